// The libcurl wrapper: the CLI talks to its local node over a Unix socket with it.
