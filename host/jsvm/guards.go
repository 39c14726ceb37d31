package jsvm

func bindGuards(rt *jsRuntime) error { return nil }
