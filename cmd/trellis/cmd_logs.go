package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/trellis-run/trellis/host/backends"
	"github.com/trellis-run/trellis/host/vocab"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/logstore"
)

// logsFlags are the query options of `trellis logs`.
type logsFlags struct {
	element, status, since, start, end, request, node, attempts, bucket string
	sender, hostName, errorCode                                         string
	kwargs                                                              []string
	page, pageSize                                                      int
	summary, timeseries                                                 bool
}

func newLogsCmd() *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs --app DIR [filters]",
		Short: "Query the execution log: nodes, requests, attempts, summaries and time series",
		Long: "Without a mode flag, lists nodes by their latest state, newest first (getEventLog).\n" +
			"  --request ID [--node ID]   every node of a request, or a node and its descendants\n" +
			"  --attempts NODE            every recorded state of one node\n" +
			"  --summary                  counts by status, failure rate, p50/p95/p99 per element\n" +
			"  --timeseries --bucket 1h   counts per bucket (1m to 1d)\n" +
			"Times: \"YYYY-MM-DD HH:mm:ss\" (app timezone), ISO-8601 or epoch milliseconds; --since 2h\n" +
			"is the same as --start two hours ago. Output is JSON.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := configOf(cmd)
			if err != nil {
				return err
			}
			h, err := newHost(cmd, cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			store, err := backends.OpenLogStore(ctx, h.Config())
			if err != nil {
				return err
			}
			defer store.Close()
			out, err := runLogsQuery(ctx, store, f, h.Location())
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.element, "element", "", "fullName of the handling element")
	fl.StringVar(&f.status, "status", "", "latest status: success, fail, running or waiting")
	fl.StringVar(&f.since, "since", "", "only nodes created in this last stretch of time (e.g. 30m, 24h, 7d)")
	fl.StringVar(&f.start, "start", "", "only nodes created at or after this time")
	fl.StringVar(&f.end, "end", "", "only nodes created before this time")
	fl.StringVar(&f.request, "request", "", "requestId: every node of that request")
	fl.StringVar(&f.node, "node", "", "with --request: that node and all its descendants")
	fl.StringVar(&f.attempts, "attempts", "", "nodeId: every recorded state of that node")
	fl.StringVar(&f.sender, "sender", "", "filter on sender")
	fl.StringVar(&f.hostName, "host", "", "filter on the host that ran the node")
	fl.StringVar(&f.errorCode, "error-code", "", "filter on the error code")
	fl.StringSliceVar(&f.kwargs, "kwargs", nil, "filter on a kwargs field, field=value (repeatable)")
	fl.IntVar(&f.page, "page", 1, "page number, from 1")
	fl.IntVar(&f.pageSize, "page-size", logstore.DefaultPageSize, "rows per page, 1 to 1000")
	fl.BoolVar(&f.summary, "summary", false, "per-element counts, failure rate and duration percentiles")
	fl.BoolVar(&f.timeseries, "timeseries", false, "counts per time bucket")
	fl.StringVar(&f.bucket, "bucket", "1h", "with --timeseries: bucket size, 1m to 1d")
	addSettings(cmd, "app", "data", "clickhouse", "clickhouse-cluster", "config")
	return cmd
}

// runLogsQuery runs the query the flags describe and returns what to print.
func runLogsQuery(ctx context.Context, store logstore.Store, f logsFlags, loc *time.Location) (any, error) {
	start, end, err := logsRange(f, loc)
	if err != nil {
		return nil, err
	}
	switch {
	case f.request != "" && f.node != "":
		rows, err := store.ByNode(ctx, f.request, f.node)
		return logstore.PublicRows(rows, loc), err
	case f.request != "":
		rows, err := store.ByRequest(ctx, f.request)
		return logstore.PublicRows(rows, loc), err
	case f.node != "":
		return nil, fmt.Errorf("--node needs --request: a node is looked up within its request")
	case f.attempts != "":
		rows, err := store.Attempts(ctx, f.attempts)
		return logstore.PublicRows(rows, loc), err
	case f.summary || f.timeseries:
		if end.IsZero() {
			end = time.Now()
		}
		if start.IsZero() {
			start = end.Add(-24 * time.Hour)
		}
		if f.summary {
			return store.Summary(ctx, logstore.SummaryQuery{Start: start, End: end, FullName: f.element})
		}
		bucket, err := parseDays(f.bucket)
		if err != nil {
			return nil, fmt.Errorf("--bucket: %w", err)
		}
		return store.TimeSeries(ctx, logstore.TimeSeriesQuery{Start: start, End: end, Bucket: bucket, FullName: f.element})
	}
	q := logstore.Query{FullName: f.element, Start: start, End: end, Status: f.status, Page: f.page, PageSize: f.pageSize,
		Sender: f.sender, Host: f.hostName, ErrorCode: f.errorCode}
	for _, kv := range f.kwargs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--kwargs %q: write field=value", kv)
		}
		if q.Kwargs == nil {
			q.Kwargs = map[string]string{}
		}
		q.Kwargs[k] = v
	}
	// Validate here, not only in the store: the store reads page 0 as "unset", the CLI as a mistake.
	if err := q.Validate(); err != nil {
		return nil, err
	}
	page, err := store.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	return map[string]any{"totalCount": page.TotalCount, "rowDatas": logstore.PublicRows(page.RowDatas, loc)}, nil
}

func logsRange(f logsFlags, loc *time.Location) (start, end time.Time, err error) {
	if f.since != "" {
		if f.start != "" {
			return start, end, fmt.Errorf("give --since or --start, not both")
		}
		d, err := parseDays(f.since)
		if err != nil || d <= 0 {
			return start, end, fmt.Errorf("--since must be a positive duration such as 30m, 24h or 7d, got %q", f.since)
		}
		start = time.Now().Add(-d)
	}
	for _, p := range []struct {
		flag, v string
		t       *time.Time
	}{{"start", f.start, &start}, {"end", f.end, &end}} {
		if p.v == "" {
			continue
		}
		var arg any = p.v
		var ms int64
		if _, scanErr := fmt.Sscanf(p.v, "%d", &ms); scanErr == nil && fmt.Sprint(ms) == p.v {
			arg = ms
		}
		if *p.t, err = vocab.ParseDatetime(arg, loc); err != nil {
			return start, end, fmt.Errorf("--%s: %w", p.flag, err)
		}
	}
	return start, end, nil
}

// parseDays is time.ParseDuration that also takes whole days ("7d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	return time.ParseDuration(s)
}
