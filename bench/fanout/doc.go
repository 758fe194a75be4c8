// Package fanout holds BenchmarkFanout, which compares the wall time of an
// SSH deploy to many hosts by shipbot, by plain parallel ssh and by
// Ansible. See fanout_test.go for how to run it.
package fanout
