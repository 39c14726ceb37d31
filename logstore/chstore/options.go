package chstore

import (
	"fmt"
	"time"
)

// Options say where the execution log lives and how it is laid out. The zero value is a single
// server, database taken from the DSN, table exec_log.
type Options struct {
	// Database holds the tables; created if missing. "" = the DSN's database, else "default".
	Database string
	// Table is the log table's name ["exec_log"]. The store also creates Table+"_keys" (the
	// request and node index) and Table+"_keys_mv" (the materialized view that fills it).
	Table string
	// Cluster, when set, runs every DDL statement ON CLUSTER Cluster (a name from the servers'
	// remote_servers configuration).
	Cluster string
	// Distributed, with Cluster: the data tables are created as Table+"_local" on every server
	// and Table and Table+"_keys" become Distributed tables over them, so inserts and queries
	// go through the Distributed tables and reach every shard.
	Distributed bool
	// Replicated uses ReplicatedReplacingMergeTree under ZooKeeperPath (needs ZooKeeper and the
	// {shard} and {replica} macros on every server). Replicated tables also deduplicate
	// retried insert blocks on the server.
	Replicated bool
	// ZooKeeperPath is the replication path prefix; the table name is appended
	// ["/clickhouse/tables/{shard}/<Database>"].
	ZooKeeperPath string
	// ShardingKey is the Distributed table's sharding expression ["cityHash64(request_id)"]:
	// keeping a request on one shard keeps every state of a node, and every copy of a row ID,
	// on one shard, which the query-time deduplication relies on.
	ShardingKey string
	// DialTimeout bounds connecting, so a server that is down fails fast [5s].
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for the server on one call [60s].
	ReadTimeout time.Duration
	// MaxOpenConns caps connections to the server [8].
	MaxOpenConns int
	// RollupDelay is how long an hour of the log (by created_at) must have had no insert before
	// Summary and TimeSeries read it (and its day) from the analytics rollup instead of the log
	// table [2m]: hours still being written are read from the log, so the rollup is not rebuilt
	// on every query. Negative = at once (tests).
	RollupDelay time.Duration
	// NoRollup makes Summary and TimeSeries always read the log table, as before the rollup
	// existed (the reference the rollup is tested against).
	NoRollup bool
}

// WithDefaults fills the unset fields; dsnDatabase is the database named by the DSN.
func (o Options) WithDefaults(dsnDatabase string) Options {
	if o.Database == "" {
		o.Database = dsnDatabase
	}
	if o.Database == "" {
		o.Database = "default"
	}
	if o.Table == "" {
		o.Table = "exec_log"
	}
	if o.ZooKeeperPath == "" {
		o.ZooKeeperPath = "/clickhouse/tables/{shard}/" + o.Database
	}
	if o.ShardingKey == "" {
		o.ShardingKey = "cityHash64(request_id)"
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 60 * time.Second
	}
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns = 8
	}
	if o.RollupDelay == 0 {
		o.RollupDelay = 2 * time.Minute
	}
	return o
}

// validate checks options after WithDefaults. Names are spliced into DDL, so they are held to
// plain identifiers.
func (o Options) validate() error {
	switch {
	case !identifier(o.Database):
		return fmt.Errorf("%w: Database %q must be letters, digits and _", ErrOptions, o.Database)
	case !identifier(o.Table) || len(o.Table) > 200:
		return fmt.Errorf("%w: Table %q must be letters, digits and _", ErrOptions, o.Table)
	case o.Cluster != "" && !identifier(o.Cluster):
		return fmt.Errorf("%w: Cluster %q must be letters, digits and _", ErrOptions, o.Cluster)
	case o.Distributed && o.Cluster == "":
		return fmt.Errorf("%w: Distributed needs Cluster, the cluster the Distributed table spans", ErrOptions)
	case o.DialTimeout < 0 || o.ReadTimeout < 0:
		return fmt.Errorf("%w: DialTimeout and ReadTimeout must not be negative", ErrOptions)
	case o.MaxOpenConns < 1:
		return fmt.Errorf("%w: MaxOpenConns must be 1 or more, got %d", ErrOptions, o.MaxOpenConns)
	}
	return nil
}

func identifier(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
