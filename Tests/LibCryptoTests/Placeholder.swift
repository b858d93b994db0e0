// Tests of LibCrypto.
