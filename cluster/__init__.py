"""Starting and supervising raftkv node processes on one machine: free ports, test.conf, the
server command line, stopping children, polling status and waiting for a leader."""
