// Tests of Proxy.
