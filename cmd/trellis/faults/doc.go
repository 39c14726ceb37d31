// Package faults is the fault suite (`make fault`): real `trellis serve` processes on the real
// backends, hurt the way production hurts them — a host's whole process group killed with -9 and
// restarted on an empty disk, Redis killed and restarted, ClickHouse stopped for a minute, every
// host down while timers come due, a host whose clock runs ahead, a handler that always throws —
// each scenario checking its pass criterion from outside, through the HTTP API, the execution log
// and rows the handlers write to PostgreSQL (issue 12).
//
// It holds tests only. They run when TRELLIS_FAULT=1 and the service variables are set
// (`make fault` does both), so `make test` skips them: they take minutes, stop servers and
// need the machine's cores to themselves. Each run uses its own app name (Redis keys
// trellis:<app>:…), ClickHouse database and PostgreSQL schema, and stops, kills or restarts only
// the processes it started: a private redis-server for the Redis kill, a private ClickHouse
// (scripts/services.sh with a directory and ports of its own) for the ClickHouse outage.
//
// The figures each scenario measures are logged as lines starting with "FIGURE" and are
// recorded in BENCHMARKS.md ("Fault suite").
package faults
