package chstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// DropBefore drops the daily partitions (UTC days of CreatedAt) before day's date from the log
// table and from the analytics tables (the hours counter and the rollup of each granularity,
// partitioned alike), and
// the monthly partitions of the keys table wholly before it: retention without TTL
// (18.16 has none for this) and without rewriting data. Rows created on day itself stay.
//
// On a single server the partitions come from system.parts. With a Cluster they come from the
// tables themselves (system.parts only knows the local server), and each DROP runs ON CLUSTER;
// dropping a partition a shard lacks is a no-op there.
func (s *Store) DropBefore(ctx context.Context, day time.Time) error {
	if err := s.checkOpen("dropBefore"); err != nil {
		return err
	}
	if day.IsZero() {
		return fmt.Errorf("chstore: dropBefore: %w: day is zero", logstore.ErrInvalidQuery)
	}
	d := day.UTC()
	month := uint32(d.Year()*100 + int(d.Month()))
	for _, t := range []struct {
		local, table, partition string
		cutoff                  uint32
	}{
		{s.schema.localLogName(), s.schema.logTable(), "toYYYYMMDD(created_at)", month*100 + uint32(d.Day())},
		{s.schema.localKeysName(), s.schema.keysTable(), "toYYYYMM(created_at)", month},
		{s.schema.localHoursName(), s.schema.hoursTable(), "toYYYYMMDD(hour)", month*100 + uint32(d.Day())},
		{s.schema.localRollupName(), s.schema.rollupTable(), "toYYYYMMDD(hour)", month*100 + uint32(d.Day())},
		{s.schema.localDaysName(), s.schema.daysTable(), "toYYYYMMDD(day)", month*100 + uint32(d.Day())},
		{s.schema.localMinutesName(), s.schema.minutesTable(), "toYYYYMMDD(minute)", month*100 + uint32(d.Day())},
	} {
		var sql string
		if s.schema.opts.Cluster == "" {
			sql = fmt.Sprintf("SELECT DISTINCT toUInt32(partition) AS p FROM system.parts WHERE database = %s AND table = %s AND active AND p < %d ORDER BY p",
				quoteString(s.schema.opts.Database), quoteString(t.local), t.cutoff)
		} else {
			sql = fmt.Sprintf("SELECT DISTINCT %[1]s AS p FROM %[2]s WHERE p < %[3]d ORDER BY p", t.partition, t.table, t.cutoff)
		}
		parts, err := s.partitions(ctx, sql)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := s.conn.Exec(ctx, s.schema.dropPartition(t.local, strconv.FormatUint(uint64(p), 10))); err != nil {
				return s.fail(ctx, "dropBefore", err)
			}
		}
	}
	return nil
}

// partitions runs a query listing partition ids.
func (s *Store) partitions(ctx context.Context, sql string) ([]uint32, error) {
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, s.fail(ctx, "dropBefore", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var p uint32
		if err := rows.Scan(&p); err != nil {
			return nil, s.fail(ctx, "dropBefore", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(ctx, "dropBefore", err)
	}
	return out, nil
}
