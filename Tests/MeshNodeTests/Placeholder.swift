// Tests of MeshNode.
