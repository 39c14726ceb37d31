package jsvm

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConcurrentCallsToManyElements(t *testing.T) {
	t.Parallel()
	const elements, goroutines, calls = 6, 16, 40
	host := &recordingHost{}
	var els []*Element
	els = append(els, &Element{FullName: "services.H", Kind: KindHost, Methods: []string{"get"}})
	for i := range elements {
		els = append(els, index(fmt.Sprintf("services.E%d", i), fmt.Sprintf(`
			let calls = 0;
			Object.prototype.owner = %d;
			exports.f = function (n) {
				calls++;
				const next = app.getElement("services.E%d").id();
				app.getElement("services.H").get(n);
				return {me: %d, owner: ({}).owner, next, n};
			};
			exports.id = () => [%d, ({}).owner];`, i, (i+1)%elements, i, i)))
	}
	vm := setup(t, Options{Host: host, MaxIdlePerElement: 2}, source(els...))
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range calls {
				i := (g + c) % elements
				res, err := vm.Execute(context.Background(), Call{Element: fmt.Sprintf("services.E%d", i), Function: "f", Args: []any{c}})
				if err != nil {
					errs <- err
					return
				}
				want := map[string]any{"me": int64(i), "owner": int64(i), "next": []any{int64((i + 1) % elements), int64((i + 1) % elements)}, "n": int64(c)}
				if fmt.Sprint(res.Value) != fmt.Sprint(want) {
					errs <- fmt.Errorf("element %d call %d: got %v, want %v", i, c, res.Value, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, host.calls, goroutines*calls)
}

func TestConcurrentLoadAndExecute(t *testing.T) {
	t.Parallel()
	vm := setup(t, Options{}, source(index("services.V", `exports.v = () => 0`)))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := vm.Execute(context.Background(), Call{Element: "services.V", Function: "v"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= 30; i++ {
		require.NoError(t, vm.Load(source(index("services.V", fmt.Sprintf(`exports.v = () => %d`, i)))))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 30, mustRun(t, vm, "services.V", "v"))
}
