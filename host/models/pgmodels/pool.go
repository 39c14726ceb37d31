package pgmodels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/trellis-run/trellis/host/models"
	"github.com/trellis-run/trellis/host/models/internal/sqlstore"
	"github.com/trellis-run/trellis/host/vocab"
)

// pool is the store's DB: a pgxpool.Pool handing out connections for one caller's sole use
// each (pgx directly rather than database/sql: see the package doc).
type pool struct{ p *pgxpool.Pool }

var _ sqlstore.DB[*pgTx] = (*pool)(nil)

// pgTx is a write transaction; tx is there for COPY.
type pgTx struct {
	querier
	tx pgx.Tx
}

var errPoolClosed = errors.New("the model store is closed")

// newPool makes a pgxpool of at most max connections over cfg. It dials lazily, so Open's first
// statement is what finds an unreachable server.
func newPool(cfg *pgx.ConnConfig, max int) (*pool, error) {
	pc, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pc.ConnConfig = cfg
	pc.MaxConns = int32(max)
	pc.AfterConnect = exactJSON
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, err
	}
	return &pool{p: p}, nil
}

// exactJSON makes the connection decode json and jsonb with vocab's decoder: pgx's default,
// encoding/json into an any, turns a number such as 9007199254740993 inside a JSON field into a
// float and loses it. Values of other Go types (the catalog's structs) decode as before.
func exactJSON(_ context.Context, conn *pgx.Conn) error {
	unmarshal := func(data []byte, v any) error {
		if p, ok := v.(*any); ok {
			decoded, err := vocab.DecodeJSON(data)
			if err != nil {
				return err
			}
			*p = decoded
			return nil
		}
		return json.Unmarshal(data, v)
	}
	tm := conn.TypeMap()
	tm.RegisterType(&pgtype.Type{Name: "json", OID: pgtype.JSONOID, Codec: &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: unmarshal}})
	tm.RegisterType(&pgtype.Type{Name: "jsonb", OID: pgtype.JSONBOID, Codec: &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: unmarshal}})
	return nil
}

func (p *pool) Read(ctx context.Context, fn func(q sqlstore.Querier) error) error {
	return p.withConn(ctx, func(conn *pgx.Conn) error { return fn(querier{conn}) })
}

// Snapshot: under READ COMMITTED each statement would see its own snapshot.
func (p *pool) Snapshot(ctx context.Context, fn func(q sqlstore.Querier) error) error {
	return p.withConn(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			return fn(querier{tx})
		})
	})
}

func (p *pool) Write(ctx context.Context, fn func(tx *pgTx) error) error {
	return p.withConn(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			return fn(&pgTx{querier: querier{tx}, tx: tx})
		})
	})
}

func (p *pool) Close() error {
	p.p.Close()
	return nil
}

// withConn runs fn on a pooled connection and gives it back. It maps the errors only it can
// tell apart: no connection to be had, and a connection that broke under a statement (pgx gives
// no SQLSTATE for that, and the error alone does not always show it).
func (p *pool) withConn(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	c, err := p.p.Acquire(ctx)
	if err != nil {
		return mapConnectError(ctx, err)
	}
	defer c.Release()
	err = fn(c.Conn())
	var pgErr *pgconn.PgError
	if err != nil && c.Conn().IsClosed() && !errors.As(err, &pgErr) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the connection to PostgreSQL broke: %w", models.ErrUnavailable, err)
	}
	return err
}

// mapConnectError wraps a failure to get a connection in models.ErrUnavailable, unless the
// caller's own context ended.
func mapConnectError(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	if errors.Is(err, puddle.ErrClosedPool) {
		return fmt.Errorf("%w: %w", models.ErrUnavailable, errPoolClosed)
	}
	return fmt.Errorf("%w: cannot connect to PostgreSQL: %w (is the server running and the DSN right?)", models.ErrUnavailable, err)
}

// runner is *pgx.Conn or pgx.Tx.
type runner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// querier is a runner as sqlstore wants it.
type querier struct{ r runner }

func (q querier) Exec(ctx context.Context, query string, args ...any) error {
	_, err := q.r.Exec(ctx, query, args...)
	return err
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return q.r.QueryRow(ctx, query, args...)
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return q.r.Query(ctx, query, args...)
}
