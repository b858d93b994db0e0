// Tests of Gossip.
