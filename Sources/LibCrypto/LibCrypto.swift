// The libcrypto wrapper: EVP AEAD for the links' record cipher.
