package pgmodels

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
)

// pool hands out connections of a pgxpool.Pool for one caller's sole use each.
type pool struct{ p *pgxpool.Pool }

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
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, err
	}
	return &pool{p: p}, nil
}

// withConn runs fn on a pooled connection and gives it back.
func (p *pool) withConn(ctx context.Context, fn func(conn *pgx.Conn) error) (acquireErr, err error) {
	c, err := p.p.Acquire(ctx)
	if err != nil {
		if errors.Is(err, puddle.ErrClosedPool) {
			err = errPoolClosed
		}
		return err, nil
	}
	defer c.Release()
	return nil, fn(c.Conn())
}

func (p *pool) close() { p.p.Close() }
