package testenv

import (
	"net"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DiskKafka is an in-process kfake broker of one test's own with its log
// on disk, on a held port (NewPort): stopped (Stop) and started again
// (Start), it comes back on the same address with the records it had.
// While it is down, connections to it are refused and no other process
// can take its port. It is stopped when the test ends.
type DiskKafka struct {
	t    testing.TB
	port *Port
	dir  string

	mu sync.Mutex
	c  *kfake.Cluster // nil while stopped
}

// NewDiskKafka starts a DiskKafka.
func NewDiskKafka(t testing.TB) *DiskKafka {
	t.Helper()
	k := &DiskKafka{t: t, port: NewPort(t), dir: t.TempDir()}
	t.Cleanup(k.Stop)
	k.Start()
	return k
}

// Addr is the broker's address, the same for its whole life.
func (k *DiskKafka) Addr() string { return k.port.Addr() }

// Start starts the broker (again) on its log; it fails the test if it
// cannot.
func (k *DiskKafka) Start() {
	k.t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(k.port.Number()), kfake.DataDir(k.dir), kfake.SyncWrites(),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return k.port.Listen() }))
	if err != nil {
		k.t.Fatalf("testenv: kfake: %v", err)
	}
	k.mu.Lock()
	k.c = c
	k.mu.Unlock()
}

// Stop stops the broker: Kafka is down until Start.
func (k *DiskKafka) Stop() {
	k.mu.Lock()
	c := k.c
	k.c = nil
	k.mu.Unlock()
	if c != nil {
		c.Close()
	}
}
