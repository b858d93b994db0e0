// The composition root of a node.
