// The data plane: ingress listeners, the routing table, HTTP/1.1 and SNI routing, splicing.
