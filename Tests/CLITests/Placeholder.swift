// Tests of CLI.
