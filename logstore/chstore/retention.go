package chstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/trellis-run/trellis/logstore"
)

// DropBefore drops the daily partitions (UTC days of CreatedAt) before day's date from the log
// and keys tables: retention without TTL (18.16 has none for this) and without rewriting data.
// Rows created on day itself stay.
//
// On a single server the partitions come from system.parts. With a Cluster they come from the
// log table itself (system.parts only knows the local server), and each DROP runs ON CLUSTER;
// dropping a partition a shard lacks is a no-op there.
func (s *Store) DropBefore(ctx context.Context, day time.Time) error {
	if err := s.checkOpen("dropBefore"); err != nil {
		return err
	}
	if day.IsZero() {
		return fmt.Errorf("chstore: dropBefore: %w: day is zero", logstore.ErrInvalidQuery)
	}
	d := day.UTC()
	cutoff := uint32(d.Year()*10000 + int(d.Month())*100 + d.Day())
	for _, table := range []string{s.schema.localLogName(), s.schema.localKeysName()} {
		parts, err := s.partitions(ctx, table, cutoff)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := s.conn.Exec(ctx, s.schema.dropPartition(table, strconv.FormatUint(uint64(p), 10))); err != nil {
				return s.fail(ctx, "dropBefore", err)
			}
		}
	}
	return nil
}

// partitions lists the day partitions (YYYYMMDD) of a local table before cutoff.
func (s *Store) partitions(ctx context.Context, table string, cutoff uint32) ([]uint32, error) {
	var sql string
	if s.schema.opts.Cluster == "" {
		sql = fmt.Sprintf("SELECT DISTINCT toUInt32(partition) FROM system.parts WHERE database = %s AND table = %s AND active AND toUInt32(partition) < %d ORDER BY 1",
			quoteString(s.schema.opts.Database), quoteString(table), cutoff)
	} else {
		from := s.schema.logTable()
		if table == s.schema.localKeysName() {
			from = s.schema.keysTable()
		}
		sql = fmt.Sprintf("SELECT DISTINCT toYYYYMMDD(created_at) FROM %s WHERE toYYYYMMDD(created_at) < %d ORDER BY 1", from, cutoff)
	}
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
