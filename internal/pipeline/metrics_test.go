package pipeline

import "testing"

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(`# HELP x_total X.
# TYPE x_total counter
x_total 3
y_total{reason="a b"} 1
y_total{reason="c"} 2.5
h_bucket{le="+Inf"} 7 1700000000000
`)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"x_total": 3, "y_total": 3.5, `y_total{reason="a b"}`: 1, `h_bucket{le="+Inf"}`: 7} {
		if v, ok := m.Value(name); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", name, v, ok, want)
		}
	}
	if _, ok := m.Value(`y_total{reason="d"}`); ok {
		t.Error("a missing series was found")
	}
	if _, err := parseMetrics("x_total\n"); err == nil {
		t.Error("a line without a value parsed")
	}
}

func TestLoopbackPort(t *testing.T) {
	for addr, want := range map[string]int{"127.0.0.1:9092": 9092, "localhost:0": 0, ":9093": 9093} {
		if p, err := loopbackPort(addr); err != nil || p != want {
			t.Errorf("loopbackPort(%q) = %d, %v; want %d", addr, p, err, want)
		}
	}
	for _, addr := range []string{"0.0.0.0:9092", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := loopbackPort(addr); err == nil {
			t.Errorf("loopbackPort(%q): no error", addr)
		}
	}
}
