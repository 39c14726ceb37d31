package chstore

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newSchema(t *testing.T, opts Options, version string) schema {
	t.Helper()
	opts = opts.WithDefaults("")
	require.NoError(t, opts.validate())
	s := schema{opts: opts}
	s.feat.parseVersion(version)
	return s
}

// On 18.16 the DDL uses nothing the server lacks, and lays the tables out for the queries.
func TestDDLSingleServer1816(t *testing.T) {
	t.Parallel()
	s := newSchema(t, Options{Database: "logs"}, "18.16.1")
	ddl := s.DDL()
	require.Len(t, ddl, 9)
	all := strings.Join(ddl, "\n")
	for _, banned := range []string{"ON CLUSTER", "LowCardinality", "CODEC", "DateTime64", "Map(", "TTL", "Distributed", "Replicated"} {
		require.NotContains(t, all, banned)
	}
	require.Equal(t, "CREATE DATABASE IF NOT EXISTS `logs`", ddl[0])
	require.Contains(t, ddl[1], "CREATE TABLE IF NOT EXISTS `logs`.`exec_log` (")
	require.Contains(t, ddl[1], "ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMMDD(created_at)\nPRIMARY KEY (full_name, created_at)\nORDER BY (full_name, created_at, node_id, id)")
	require.Contains(t, ddl[1], "status "+statusEnum)
	require.Contains(t, ddl[2], "CREATE TABLE IF NOT EXISTS `logs`.`exec_log_keys` (")
	require.Contains(t, ddl[2], "PARTITION BY toYYYYMM(created_at)\nPRIMARY KEY key_hash\nORDER BY (key_hash, full_name, created_at)")
	require.Contains(t, ddl[3], "CREATE MATERIALIZED VIEW IF NOT EXISTS `logs`.`exec_log_keys_mv` TO `logs`.`exec_log_keys`")
	require.Contains(t, ddl[3], "SELECT cityHash64(key) AS key_hash, full_name, created_at FROM `logs`.`exec_log` ARRAY JOIN [request_id, node_id] AS key")
	for _, c := range logColumns {
		require.Regexp(t, "\n    "+regexp.QuoteMeta(c.name+" "+c.typ)+"(,|\n)", ddl[1])
	}
	require.Equal(t, "`logs`.`exec_log`", s.logTable())
	require.Equal(t, "`logs`.`exec_log_keys`", s.keysTable())
	// The analytics rollup: the hours counter, the rollup table and the view filling the counter.
	require.Contains(t, ddl[4], "CREATE TABLE IF NOT EXISTS `logs`.`exec_log_hours` (")
	require.Contains(t, ddl[4], "ENGINE = AggregatingMergeTree\nPARTITION BY toYYYYMMDD(hour)")
	require.Contains(t, ddl[5], "CREATE TABLE IF NOT EXISTS `logs`.`exec_log_rollup` (")
	require.Contains(t, ddl[5], "durations "+durationsType)
	require.Contains(t, ddl[5], "ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(hour)")
	require.Equal(t, "CREATE MATERIALIZED VIEW IF NOT EXISTS `logs`.`exec_log_hours_mv` TO `logs`.`exec_log_hours` AS\nSELECT toStartOfHour(created_at) AS hour, countState() AS rows, maxState(now()) AS inserted FROM `logs`.`exec_log` GROUP BY hour", ddl[6])
	require.Contains(t, ddl[7], "CREATE TABLE IF NOT EXISTS `logs`.`exec_log_rollup_days` (\n    day DateTime('UTC'),")
	require.Contains(t, ddl[7], "durations "+durationsType)
	require.Contains(t, ddl[7], "ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(day)\nORDER BY (full_name, day, build)")
	require.Contains(t, ddl[8], "CREATE TABLE IF NOT EXISTS `logs`.`exec_log_rollup_minutes` (\n    minute DateTime('UTC'),")
	require.Contains(t, ddl[8], "ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(minute)\nORDER BY (full_name, minute, build)")
}

// Current servers get LowCardinality and codecs; the column check accepts either generation.
func TestDDLModernServer(t *testing.T) {
	t.Parallel()
	s := newSchema(t, Options{}, "24.8.4.13")
	require.True(t, s.feat.modernTypes)
	table := s.DDL()[1]
	require.Contains(t, table, "full_name LowCardinality(String),")
	require.Contains(t, table, "kwargs String CODEC(ZSTD(1)),")
	require.Contains(t, table, "created_at DateTime('UTC') CODEC(DoubleDelta, LZ4),")
	for _, c := range logColumns {
		require.True(t, c.accepts(c.declared(false)), c.name)
		require.True(t, c.accepts(c.declared(true)), c.name)
		require.NotContains(t, c.declared(true), "CODEC")
	}
	fullName := logColumns[2]
	require.Equal(t, "full_name", fullName.name)
	require.True(t, fullName.accepts("LowCardinality(String)"))
	require.False(t, fullName.accepts("UInt32"))
	require.True(t, logColumns[11].accepts(`DateTime(\'UTC\')`), "as system.columns may escape it")
	require.False(t, logColumns[11].accepts("DateTime"), "a DateTime in the server's zone would shift the days")
}

// A cluster: every statement runs ON CLUSTER; data lives in *_local replicated tables and the
// store reads and writes the Distributed tables over them, sharded by request.
func TestDDLCluster(t *testing.T) {
	t.Parallel()
	s := newSchema(t, Options{Database: "logs", Table: "execs", Cluster: "prod", Distributed: true, Replicated: true}, "18.16.1")
	ddl := s.DDL()
	require.Len(t, ddl, 15)
	for _, stmt := range ddl {
		require.Contains(t, stmt, " ON CLUSTER `prod`", stmt)
	}
	require.Contains(t, ddl[1], "CREATE TABLE IF NOT EXISTS `logs`.`execs_local` ON CLUSTER `prod` (")
	require.Contains(t, ddl[1], "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/logs/execs_local', '{replica}')")
	require.Contains(t, ddl[2], "CREATE TABLE IF NOT EXISTS `logs`.`execs_keys_local` ON CLUSTER `prod` (")
	require.Contains(t, ddl[2], "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/logs/execs_keys_local', '{replica}')")
	require.Contains(t, ddl[3], "TO `logs`.`execs_keys_local` AS\nSELECT cityHash64(key) AS key_hash, full_name, created_at FROM `logs`.`execs_local`")
	require.Equal(t, "CREATE TABLE IF NOT EXISTS `logs`.`execs` ON CLUSTER `prod` AS `logs`.`execs_local`\nENGINE = Distributed(`prod`, `logs`, `execs_local`, cityHash64(request_id))", ddl[4])
	require.Equal(t, "CREATE TABLE IF NOT EXISTS `logs`.`execs_keys` ON CLUSTER `prod` AS `logs`.`execs_keys_local`\nENGINE = Distributed(`prod`, `logs`, `execs_keys_local`, key_hash)", ddl[5])
	require.Contains(t, ddl[6], "CREATE TABLE IF NOT EXISTS `logs`.`execs_hours_local` ON CLUSTER `prod` (")
	require.Contains(t, ddl[6], "ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/logs/execs_hours_local', '{replica}')")
	require.Contains(t, ddl[7], "ReplicatedMergeTree('/clickhouse/tables/{shard}/logs/execs_rollup_local', '{replica}')")
	require.Contains(t, ddl[8], "TO `logs`.`execs_hours_local` AS\nSELECT toStartOfHour(created_at) AS hour, countState() AS rows, maxState(now()) AS inserted FROM `logs`.`execs_local`")
	require.Equal(t, "CREATE TABLE IF NOT EXISTS `logs`.`execs_hours` ON CLUSTER `prod` AS `logs`.`execs_hours_local`\nENGINE = Distributed(`prod`, `logs`, `execs_hours_local`, rand())", ddl[9])
	require.Equal(t, "CREATE TABLE IF NOT EXISTS `logs`.`execs_rollup` ON CLUSTER `prod` AS `logs`.`execs_rollup_local`\nENGINE = Distributed(`prod`, `logs`, `execs_rollup_local`, rand())", ddl[10])
	require.Contains(t, ddl[11], "ReplicatedMergeTree('/clickhouse/tables/{shard}/logs/execs_rollup_days_local', '{replica}')")
	require.Contains(t, ddl[12], "ReplicatedMergeTree('/clickhouse/tables/{shard}/logs/execs_rollup_minutes_local', '{replica}')")
	require.Equal(t, "CREATE TABLE IF NOT EXISTS `logs`.`execs_rollup_days` ON CLUSTER `prod` AS `logs`.`execs_rollup_days_local`\nENGINE = Distributed(`prod`, `logs`, `execs_rollup_days_local`, rand())", ddl[13])
	require.Equal(t, "CREATE TABLE IF NOT EXISTS `logs`.`execs_rollup_minutes` ON CLUSTER `prod` AS `logs`.`execs_rollup_minutes_local`\nENGINE = Distributed(`prod`, `logs`, `execs_rollup_minutes_local`, rand())", ddl[14])
	require.Equal(t, "`logs`.`execs_rollup`", s.rollupTable())
	require.Equal(t, "`logs`.`execs`", s.logTable())
	require.Equal(t, "`logs`.`execs_keys`", s.keysTable())
	require.Equal(t, "ALTER TABLE `logs`.`execs_local` ON CLUSTER `prod` DROP PARTITION 20300101", s.dropPartition(s.localLogName(), "20300101"))
	require.Equal(t, "INSERT INTO `logs`.`execs` (id, kind, full_name, sender, event_type, status, stage, request_id, node_id, parent_node_id, attempt, created_at, created_ms, version, seq, start_ms, end_ms, duration_ms, kwargs, result, has_error, error_code, error_message, error_stack, host, logs, event_id)", s.insertSQL())
}

// A cluster without Distributed (every server holds all data, e.g. one shard of replicas):
// ON CLUSTER DDL, no local/Distributed split.
func TestDDLClusterReplicasOnly(t *testing.T) {
	t.Parallel()
	s := newSchema(t, Options{Cluster: "replicas", Replicated: true, ZooKeeperPath: "/ch/{shard}/"}, "18.16.1")
	ddl := s.DDL()
	require.Len(t, ddl, 9)
	require.Contains(t, ddl[1], "`default`.`exec_log` ON CLUSTER `replicas`")
	require.Contains(t, ddl[1], "ReplicatedReplacingMergeTree('/ch/{shard}/exec_log', '{replica}')")
	require.Equal(t, "`default`.`exec_log`", s.logTable())
}

func TestQuoteString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":        `'plain'`,
		`it's`:         `'it\'s'`,
		`back\slash`:   `'back\\slash'`,
		`\'`:           `'\\\''`,
		"nul\x00byte":  `'nul\0byte'`,
		"Zoë \"名前\"\n": "'Zoë \"名前\"\n'",
	} {
		require.Equal(t, want, quoteString(in), in)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]struct {
		major, minor int
		modern       bool
	}{
		"18.16.1":     {18, 16, false},
		"19.17.4.11":  {19, 17, false},
		"20.1.2.4":    {20, 1, true},
		"24.8.4.13":   {24, 8, true},
		"not-a-build": {0, 0, false},
	} {
		var f features
		f.parseVersion(v)
		require.Equal(t, want.major, f.major, v)
		require.Equal(t, want.minor, f.minor, v)
		require.Equal(t, want.modern, f.modernTypes, v)
	}
}

func TestRangeConds(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"(full_name < 'lag:' OR full_name >= 'lag;')"}, rangeConds("", zeroTime, zeroTime), "over every element, lag samples are left out")
	start := unixMilli(1_900_000_000_500)
	end := unixMilli(1_900_000_010_000)
	require.Equal(t, []string{
		"full_name = 'a.B'",
		"created_at >= toDateTime(1900000000)",
		createdMSExpr + " >= 1900000000500",
		"created_at <= toDateTime(1900000009)",
		createdMSExpr + " < 1900000010000",
	}, rangeConds("a.B", start, end))
	// Bounds outside DateTime's range clamp instead of wrapping around.
	require.Contains(t, rangeConds("", unixMilli(-5_000), zeroTime), "created_at >= toDateTime(0)")
	require.Contains(t, rangeConds("", zeroTime, unixMilli(5_000_000_000_000)), "created_at <= toDateTime(4294967295)")
}

var zeroTime time.Time

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms) }

func TestSpanCond(t *testing.T) {
	t.Parallel()
	require.Equal(t, "((full_name, created_at) IN (('a', toDateTime(100)), ('a', toDateTime(101)), ('b', toDateTime(7))))",
		spanCond([]span{{"a", 100, 101}, {"b", 7, 7}}))
	require.Equal(t, "((full_name = 'a' AND created_at >= toDateTime(100) AND created_at <= toDateTime(200)) OR (full_name, created_at) IN (('b', toDateTime(7))))",
		spanCond([]span{{"a", 100, 200}, {"b", 7, 7}}))
	var many []span
	for i := range maxSpans + 1 {
		many = append(many, span{fmt.Sprintf("e%d", i), uint32(1000 * i), uint32(1000*i + 500)})
	}
	cond := spanCond(many)
	require.True(t, strings.HasPrefix(cond, "(full_name IN ('e0', 'e1', "), cond)
	require.True(t, strings.HasSuffix(cond, fmt.Sprintf("AND created_at >= toDateTime(0) AND created_at <= toDateTime(%d))", 1000*maxSpans+500)), cond)
}
