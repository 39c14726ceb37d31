package chstore

import (
	"fmt"
	"strconv"
	"strings"
)

// features are what the connected server can do beyond ClickHouse 18.16, read once at Open.
type features struct {
	version string
	major   int
	minor   int
	// modernTypes: LowCardinality(String) for repetitive names and per-column compression
	// codecs. Both exist (and are stable) from 20.1; 18.16 has neither without experimental
	// settings, so older servers get plain String and the table-wide LZ4.
	modernTypes bool
	// jsonExtract: JSONExtractRaw/JSONExtractString exist, which read top-level fields only and
	// tolerate whitespace; without them kwargs filters use visitParamExtract*, which find the
	// first field of that name at any depth of compact JSON.
	jsonExtract bool
	// partitionLimit: the server has max_partitions_per_insert_block (19.x and newer, default
	// 100), which would refuse a batch whose rows fall on more days — a writer replaying an old
	// spool, or states of long-lived nodes, can send one.
	partitionLimit bool
}

// parseVersion fills major and minor from a version() string such as "18.16.1".
func (f *features) parseVersion(v string) {
	f.version = v
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		f.major, _ = strconv.Atoi(parts[0])
		f.minor, _ = strconv.Atoi(parts[1])
	}
	f.modernTypes = f.major >= 20
}

// column is one column of the log table: its type on 18.16, and on modern servers.
type column struct {
	name   string
	typ    string
	modern string // "" = same as typ
}

const statusEnum = "Enum8('waiting' = 1, 'running' = 2, 'success' = 3, 'fail' = 4)"

// logColumns are the log table's columns in insert order. Times are DateTime('UTC') plus
// milliseconds (no DateTime64 on 18.16); created_at is split so the partition key and the
// sorting key stay a plain DateTime. Zero start/end times are 0. RecordedAt is stored only
// inside version (see versionOf), which orders a node's states with one UInt64: argMax over a
// scalar is about twice as fast as over the tuple (recorded_ms, seq).
var logColumns = []column{
	{"id", "String", "String CODEC(ZSTD(1))"},
	{"kind", "String", "LowCardinality(String)"},
	{"full_name", "String", "LowCardinality(String)"},
	{"sender", "String", "LowCardinality(String)"},
	{"event_type", "String", "LowCardinality(String)"},
	{"status", statusEnum, ""},
	{"stage", "String", "LowCardinality(String)"},
	{"request_id", "String", "String CODEC(ZSTD(1))"},
	{"node_id", "String", "String CODEC(ZSTD(1))"},
	{"parent_node_id", "String", "String CODEC(ZSTD(1))"},
	{"attempt", "UInt32", ""},
	{"created_at", "DateTime('UTC')", "DateTime('UTC') CODEC(DoubleDelta, LZ4)"},
	{"created_ms", "UInt16", ""},
	{"version", "UInt64", "UInt64 CODEC(Delta, ZSTD(1))"},
	{"seq", "UInt32", ""},
	{"start_ms", "Int64", "Int64 CODEC(Delta, ZSTD(1))"},
	{"end_ms", "Int64", "Int64 CODEC(Delta, ZSTD(1))"},
	{"duration_ms", "Int64", "Int64 CODEC(T64, LZ4)"},
	{"kwargs", "String", "String CODEC(ZSTD(1))"},
	{"result", "String", "String CODEC(ZSTD(1))"},
	{"has_error", "UInt8", ""},
	{"error_code", "String", "LowCardinality(String)"},
	{"error_message", "String", "String CODEC(ZSTD(1))"},
	{"error_stack", "String", "String CODEC(ZSTD(1))"},
	{"host", "String", "LowCardinality(String)"},
	{"logs", "String", "String CODEC(ZSTD(1))"},
	{"event_id", "String", "String CODEC(ZSTD(1))"},
}

// keyColumns are the index table's: one row per (hash of a request or node id, element,
// creation second), so a lookup by request or node id learns which (full_name, created_at)
// ranges of the log table to read instead of scanning it. The key is cityHash64 of the id:
// 8 bytes to compare instead of a 32-byte string, and a collision only adds a range to read
// (the log table is then filtered by the id itself).
var keyColumns = []column{
	{"key_hash", "UInt64", ""},
	{"full_name", "String", "LowCardinality(String)"},
	{"created_at", "DateTime('UTC')", "DateTime('UTC') CODEC(DoubleDelta, LZ4)"},
}

// declared is the column's type as system.columns reports it (codecs are not part of it).
func (c column) declared(modern bool) string {
	t := c.typ
	if modern && c.modern != "" {
		t = c.modern
	}
	if i := strings.Index(t, " CODEC("); i >= 0 {
		return t[:i]
	}
	return t
}

// accepts reports whether an existing column of type got can serve as c: either generation's
// type, so a table created before a server upgrade keeps working.
func (c column) accepts(got string) bool {
	got = strings.ReplaceAll(got, `\'`, `'`)
	return got == c.declared(false) || got == c.declared(true)
}

// schema names the store's tables and writes their DDL.
type schema struct {
	opts Options
	feat features
}

func quoteIdent(s string) string { return "`" + s + "`" }

func (s schema) qualified(table string) string {
	return quoteIdent(s.opts.Database) + "." + quoteIdent(table)
}

// localLog and localKeys are the MergeTree tables holding data: on every server of a cluster
// in Distributed mode, else the only ones.
func (s schema) localLogName() string {
	if s.opts.Distributed {
		return s.opts.Table + "_local"
	}
	return s.opts.Table
}

func (s schema) localKeysName() string {
	if s.opts.Distributed {
		return s.opts.Table + "_keys_local"
	}
	return s.opts.Table + "_keys"
}

func (s schema) viewName() string { return s.opts.Table + "_keys_mv" }

// The analytics rollup (rollup.go): Table+"_hours", filled by the view Table+"_hours_mv", counts
// the rows inserted per hour of created_at; Table+"_rollup" holds per-element figures of whole
// hours, built from the log by the queries themselves.
func (s schema) localHoursName() string  { return s.localName(s.opts.Table + "_hours") }
func (s schema) localRollupName() string { return s.localName(s.opts.Table + "_rollup") }
func (s schema) hoursViewName() string   { return s.opts.Table + "_hours_mv" }
func (s schema) hoursTable() string      { return s.qualified(s.opts.Table + "_hours") }
func (s schema) rollupTable() string     { return s.qualified(s.opts.Table + "_rollup") }

// The rollup's other granularities (rollup.go): Table+"_rollup_days", per-element figures of
// whole days merged from the hourly rollup, and Table+"_rollup_minutes", every element's figures
// per minute, built from the log an hour at a time.
func (s schema) localDaysName() string    { return s.localName(s.opts.Table + "_rollup_days") }
func (s schema) localMinutesName() string { return s.localName(s.opts.Table + "_rollup_minutes") }
func (s schema) daysTable() string        { return s.qualified(s.opts.Table + "_rollup_days") }
func (s schema) minutesTable() string     { return s.qualified(s.opts.Table + "_rollup_minutes") }

func (s schema) localName(table string) string {
	if s.opts.Distributed {
		return table + "_local"
	}
	return table
}

// logTable and keysTable are what inserts and queries use (Distributed tables in that mode).
func (s schema) logTable() string  { return s.qualified(s.opts.Table) }
func (s schema) keysTable() string { return s.qualified(s.opts.Table + "_keys") }

func (s schema) onCluster() string {
	if s.opts.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + quoteIdent(s.opts.Cluster)
}

func (s schema) engine(table string) string { return s.engineOf("ReplacingMergeTree", table) }

// engineOf is a MergeTree family engine (MergeTree, AggregatingMergeTree…), replicated if the
// options say so.
func (s schema) engineOf(kind, table string) string {
	if s.opts.Replicated {
		path := strings.TrimRight(s.opts.ZooKeeperPath, "/") + "/" + table
		return fmt.Sprintf("Replicated%s(%s, '{replica}')", kind, quoteString(path))
	}
	return kind
}

func (s schema) columnsDDL(cols []column) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(",\n")
		}
		t := c.typ
		if s.feat.modernTypes && c.modern != "" {
			t = c.modern
		}
		fmt.Fprintf(&b, "    %s %s", c.name, t)
	}
	return b.String()
}

// DDL is every statement Open runs, in order, each idempotent (IF NOT EXISTS).
//
// The log table is a ReplacingMergeTree: a row inserted twice (a retried batch whose first try
// succeeded) has the same sorting key, ending in id, so merges fold the copies; queries never
// rely on merges having happened (they dedupe by id or take argMax per node). It is
// partitioned by UTC day, so retention drops whole partitions, and sorted by
// (full_name, created_at, node_id, id): getEventLog filters on full_name and a created_at
// range, which the primary index narrows to a few granules, and a node's states sit together.
// The primary index holds only (full_name, created_at), one entry per 1024 rows: about 40 MB
// of memory per billion rows, and a point read (a request, a page of getEventLog) decompresses
// a few small granules; with 8192-row granules ByRequest took twice as long.
//
// Request and node lookups go through the keys table, which a materialized view fills. It is
// partitioned by month, not day: a lookup has to probe every part of every partition (an id
// says nothing about its day), so fewer partitions make lookups cheaper. DropBefore drops its
// months once wholly past; keys of days dropped from the log meanwhile point at nothing and
// cost only a wasted probe.
func (s schema) DDL() []string { return append(s.tablesDDL(), s.viewsDDL()...) }

// tablesDDL creates the database and the two data tables; Open checks their columns before
// viewsDDL builds on them, so a foreign table is reported as such.
func (s schema) tablesDDL() []string {
	on := s.onCluster()
	localLog, localKeys := s.localLogName(), s.localKeysName()
	stmts := []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", quoteIdent(s.opts.Database), on),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (\n%s\n) ENGINE = %s\nPARTITION BY toYYYYMMDD(created_at)\nPRIMARY KEY (full_name, created_at)\nORDER BY (full_name, created_at, node_id, id)\nSETTINGS index_granularity = 1024",
			s.qualified(localLog), on, s.columnsDDL(logColumns), s.engine(localLog)),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (\n%s\n) ENGINE = %s\nPARTITION BY toYYYYMM(created_at)\nPRIMARY KEY key_hash\nORDER BY (key_hash, full_name, created_at)\nSETTINGS index_granularity = 1024",
			s.qualified(localKeys), on, s.columnsDDL(keyColumns), s.engine(localKeys)),
	}
	return stmts
}

// viewsDDL creates the view filling the keys table and, in Distributed mode, the Distributed
// tables.
func (s schema) viewsDDL() []string {
	on := s.onCluster()
	localLog, localKeys := s.localLogName(), s.localKeysName()
	stmts := []string{
		fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS\nSELECT cityHash64(key) AS key_hash, full_name, created_at FROM %s ARRAY JOIN [request_id, node_id] AS key",
			s.qualified(s.viewName()), on, s.qualified(localKeys), s.qualified(localLog)),
	}
	if s.opts.Distributed {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s, %s)",
				s.logTable(), on, s.qualified(localLog), quoteIdent(s.opts.Cluster), quoteIdent(s.opts.Database), quoteIdent(localLog), s.opts.ShardingKey),
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s, key_hash)",
				s.keysTable(), on, s.qualified(localKeys), quoteIdent(s.opts.Cluster), quoteIdent(s.opts.Database), quoteIdent(localKeys)),
		)
	}
	return append(stmts, s.rollupDDL()...)
}

// rollupColumns are a rollup table's, after its time column (hour, day or minute), in insert
// order: per (period, element) of one build, the counts of nodes by latest status and the
// exact-quantile state of finished nodes' durations (milliseconds, capped at 2³²−1). A build's
// marker row (empty full_name) per hour (per day in the days table) says the build is complete;
// rows is the insert count of that hour or day (from the hours table) the build was made at.
const rollupColumns = "rows, build, full_name, total, waiting, running, success, fail, durations"

// durationsType is the rollup's duration state: quantilesExactWeighted keeps each distinct
// duration with its count, so merged states give exactly what quantileExact over the raw
// durations gives (the value at index floor(q·n) of the sorted durations) while holding a few
// hundred entries per hour instead of every value. Each level is a hair (10⁻¹²) above the
// percentile: then both definitions the function has had (the first value whose cumulative
// count is > q·n, or ≥ ceil(q·n)) pick index floor(q·n) for any count below 10¹⁰.
const durationsType = "AggregateFunction(quantilesExactWeighted(" + durationLevels + "), UInt32, UInt64)"

// durationLevels are p50, p95 and p99 as the rollup's state asks for them.
const durationLevels = "0.500000000001, 0.950000000001, 0.990000000001"

// rollupDDL creates the hours counter, its view and the rollup tables of each granularity
// (hours, then days and minutes, and their Distributed tables). All are partitioned by UTC day
// like the log, so DropBefore drops them alike.
func (s schema) rollupDDL() []string {
	on := s.onCluster()
	hours, rollup := s.localHoursName(), s.localRollupName()
	stmts := []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (\n    hour DateTime('UTC'),\n    rows AggregateFunction(count),\n    inserted AggregateFunction(max, DateTime)\n) ENGINE = %s\nPARTITION BY toYYYYMMDD(hour)\nORDER BY hour",
			s.qualified(hours), on, s.engineOf("AggregatingMergeTree", hours)),
		s.rollupTableDDL(rollup, "hour"),
		fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS\nSELECT toStartOfHour(created_at) AS hour, countState() AS rows, maxState(now()) AS inserted FROM %s GROUP BY hour",
			s.qualified(s.hoursViewName()), on, s.qualified(hours), s.qualified(s.localLogName())),
	}
	if s.opts.Distributed {
		stmts = append(stmts, s.distributedDDL(s.hoursTable(), hours), s.distributedDDL(s.rollupTable(), rollup))
	}
	stmts = append(stmts, s.rollupTableDDL(s.localDaysName(), "day"), s.rollupTableDDL(s.localMinutesName(), "minute"))
	if s.opts.Distributed {
		stmts = append(stmts, s.distributedDDL(s.daysTable(), s.localDaysName()), s.distributedDDL(s.minutesTable(), s.localMinutesName()))
	}
	return stmts
}

// rollupTableDDL creates one granularity's rollup table, whose time column col is the start of
// each row's hour, day or minute.
func (s schema) rollupTableDDL(table, col string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s%[2]s (\n    %[5]s DateTime('UTC'),\n    rows UInt64,\n    build UInt64,\n    full_name String,\n    total UInt64,\n    waiting UInt64,\n    running UInt64,\n    success UInt64,\n    fail UInt64,\n    durations %[3]s\n) ENGINE = %[4]s\nPARTITION BY toYYYYMMDD(%[5]s)\nORDER BY (full_name, %[5]s, build)\nSETTINGS index_granularity = 1024",
		s.qualified(table), s.onCluster(), durationsType, s.engineOf("MergeTree", table), col)
}

// distributedDDL is a Distributed table over the shards' local analytics table, sharded at random.
func (s schema) distributedDDL(table, local string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, %s, %s, rand())",
		table, s.onCluster(), s.qualified(local), quoteIdent(s.opts.Cluster), quoteIdent(s.opts.Database), quoteIdent(local))
}

// dropPartition is the retention statement for one partition of one local table.
func (s schema) dropPartition(table, partition string) string {
	return fmt.Sprintf("ALTER TABLE %s%s DROP PARTITION %s", s.qualified(table), s.onCluster(), partition)
}

// quoteString makes a ClickHouse string literal. Every value spliced into SQL goes through it
// (or is a number), so no input can end the literal.
func quoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`\'`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
