package testenv

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultKafkaPartitions is the partition count of topics that KafkaOptions
// does not size otherwise: enough to exercise partition assignment in a
// consumer group, few enough to keep group joins quick.
const DefaultKafkaPartitions = 4

// KafkaOptions configures StartKafka. The zero value is ready to use.
type KafkaOptions struct {
	// Topics are created before StartKafka returns.
	Topics []string
	// Partitions is the partition count of Topics and of topics created
	// later without one. Default DefaultKafkaPartitions.
	Partitions int32
	// Port is the broker's port at 127.0.0.1. Default: a free port, chosen
	// by the kernel when the broker listens, so it cannot race.
	Port int
	// Extra are further kfake options, applied last (for example
	// kfake.AllowAutoTopicCreation() or kfake.WithLogger).
	Extra []kfake.Opt
}

// KafkaCluster is an in-process, single-broker Kafka-protocol cluster (kfake).
// Any Kafka client can use it: kafka-go, franz-go, librdkafka.
type KafkaCluster struct {
	cluster *kfake.Cluster
	brokers []string
}

// StartKafka starts an in-process broker. It is ready when StartKafka
// returns; ctx is only checked, because starting does not block.
func StartKafka(ctx context.Context, opts KafkaOptions) (*KafkaCluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting kafka: %w", err)
	}
	partitions := opts.Partitions
	if partitions <= 0 {
		partitions = DefaultKafkaPartitions
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(partitions)),
	}
	if opts.Port != 0 {
		kopts = append(kopts, kfake.Ports(opts.Port))
	}
	if len(opts.Topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(partitions, opts.Topics...))
	}
	cluster, err := kfake.NewCluster(append(kopts, opts.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("starting kafka: %w", err)
	}
	return &KafkaCluster{cluster: cluster, brokers: cluster.ListenAddrs()}, nil
}

// Brokers returns the bootstrap addresses (host:port).
func (k *KafkaCluster) Brokers() []string { return append([]string(nil), k.brokers...) }

// Cluster returns the kfake cluster, for tests that inject faults with its
// Control functions.
func (k *KafkaCluster) Cluster() *kfake.Cluster { return k.cluster }

// Close shuts the broker down. It always returns nil; the error result
// makes Kafka an io.Closer like the other servers.
func (k *KafkaCluster) Close() error {
	k.cluster.Close()
	return nil
}
