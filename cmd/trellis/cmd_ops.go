package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trellis-run/trellis/host/engine"
	"github.com/trellis-run/trellis/host/vocab"
)

// `trellis node OP ID` and `trellis request OP ID`: the node and request operations
// (docs/events.md, "Operations"), run in-process on the app's backends the way `trellis call`
// runs a service: on Redis beside running hosts, or on the embedded backends of an app no
// `trellis serve` holds (beside one, use POST /api/nodes/{id}/{op}).

func newNodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node --app DIR OP NODE_ID ['JSON']",
		Short: "Pause, resume, retry, skip or force-fail an event node",
		Long: "Runs a node operation: " + strings.Join(engine.NodeOps, ", ") + ".\n" +
			"The JSON argument is retry's new kwargs (an object) or forcedFail's reason (a string);\n" +
			"it is an argument, not --data, which names the data directory as in every command.\n" +
			"The node's state after the operation goes to stdout as JSON; an operation its state\n" +
			"does not allow fails naming the state.",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, id := args[0], args[1]
			data := ""
			if len(args) == 3 {
				data = args[2]
			}
			if !slices.Contains(engine.NodeOps, op) {
				return fmt.Errorf("no node operation %q: use one of %s", op, strings.Join(engine.NodeOps, ", "))
			}
			var d any
			if data != "" {
				var err error
				if d, err = vocab.DecodeJSON([]byte(data)); err != nil {
					return fmt.Errorf("the %s data is not valid JSON: %w", op, err)
				}
			}
			return runOp(cmd, func(ctx context.Context, h opHost) (any, error) { return h.NodeOp(ctx, op, id, d) })
		},
	}
	addSettings(cmd, "app", "data", "redis", "clickhouse", "clickhouse-cluster", "db", "sandbox", "workers", "timeout", "memory-limit", "max-kwargs", "config")
	addSettings(cmd, capSettings...)
	return cmd
}

func newRequestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "request --app DIR OP REQUEST_ID",
		Short: "Pause, resume or revoke a request",
		Long: "Runs a request operation: " + strings.Join(engine.RequestOps, ", ") + ". The request's state and the nodes\n" +
			"the operation changed go to stdout as JSON.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, id := args[0], args[1]
			if !slices.Contains(engine.RequestOps, op) {
				return fmt.Errorf("no request operation %q: use one of %s", op, strings.Join(engine.RequestOps, ", "))
			}
			return runOp(cmd, func(ctx context.Context, h opHost) (any, error) { return h.RequestOp(ctx, op, id) })
		},
	}
	addSettings(cmd, "app", "data", "redis", "clickhouse", "clickhouse-cluster", "db", "sandbox", "workers", "timeout", "memory-limit", "max-kwargs", "config")
	addSettings(cmd, capSettings...)
	return cmd
}

type opHost interface {
	NodeOp(ctx context.Context, op, nodeID string, data any) (any, error)
	RequestOp(ctx context.Context, op, requestID string) (engine.RequestOpResult, error)
}

// runOp starts a host on the app's backends, runs do, and prints its answer.
func runOp(cmd *cobra.Command, do func(ctx context.Context, h opHost) (any, error)) error {
	cfg, err := configOf(cmd)
	if err != nil {
		return err
	}
	h, err := newHost(cmd, cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := h.Start(ctx); err != nil {
		return err
	}
	defer h.Stop(context.Background())
	res, err := do(ctx, h)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), string(out))
	return nil
}
