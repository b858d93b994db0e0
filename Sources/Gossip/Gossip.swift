// SWIM + Lifeguard membership and the replicated map of signed entries.
