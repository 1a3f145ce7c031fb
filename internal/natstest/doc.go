// Package natstest is a test bed: a real nats-server cluster on loopback,
// with JetStream and the MQTT gateway on, for the tests of hub replicas in
// front of a cluster.
//
// The server is not a dependency of motehub: [Binary] builds it with the go
// tool from the module in internal/natstest/tool (its own go.mod pins
// github.com/nats-io/nats-server/v2, so the product's go.mod never carries
// it), once per machine, into a cache directory outside the repository.
// [StartCluster] then runs a three-node cluster as child processes, each
// node with its own configuration file, JetStream store and loopback ports.
//
// Concurrency: a Cluster belongs to the test that started it; its methods
// are safe for concurrent use. Every process it starts is stopped, by its
// PID, before the test's cleanup returns, and so is the goroutine that waits
// for it.
package natstest
