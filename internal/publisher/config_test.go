package publisher

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anomalyd/anomalyd/internal/service"
)

func TestConfigFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"-min-hits", "3", "-min-margin", "0.5", "-rise-margin", "inf", "-early-hit-margin", "inf", "-top", "64", "-detection-ttl", "1s"}, ""},
		{[]string{"-scores-table", "scores; DROP TABLE x"}, "-scores-table"},
		{[]string{"-batch-size", "0"}, "-batch-size"},
		{[]string{"-batch-linger", "0s"}, "-batch-linger"},
		{[]string{"-retention", "23h"}, "-retention"},
		{[]string{"-shutdown-timeout", "0s"}, "-shutdown-timeout"},
		{[]string{"-detections-batch-size", "0"}, "-detections-batch-size"},
		{[]string{"-detections-linger", "0s"}, "-detections-linger"},
		{[]string{"-detection-ttl", "999ms"}, "-detection-ttl"},
		{[]string{"-min-hits", "0"}, "-min-hits"},
		{[]string{"-min-hits", "101"}, "-min-hits"},
		{[]string{"-min-margin", "-1"}, "-min-margin"},
		{[]string{"-min-margin", "NaN"}, "-min-margin"},
		{[]string{"-min-margin", "inf"}, "-min-margin"},
		{[]string{"-rise-margin", "-0.5"}, "-rise-margin"},
		{[]string{"-rise-margin", "nan"}, "-rise-margin"},
		{[]string{"-early-hit-margin", "-1"}, "-early-hit-margin"},
		{[]string{"-early-hit-margin", "nan"}, "-early-hit-margin"},
		{[]string{"-top", "0"}, "-top"},
		{[]string{"-top", "65"}, "-top"},
		{[]string{"-max-tracked", "0"}, "-max-tracked"},
		{[]string{"-crowd-ratio", "0"}, ""},
		{[]string{"-crowd-ratio", "0.5"}, "-crowd-ratio"},
		{[]string{"-usual-start", "0"}, ""},
		{[]string{"-usual-start", "1.5"}, "-usual-start"},
		{[]string{"-usual-start", "NaN"}, "-usual-start"},
		{[]string{"-crowd-ratio", "inf"}, "-crowd-ratio"},
		{[]string{"-crowd-chance", "0"}, "-crowd-chance"},
		{[]string{"-crowd-chance", "1"}, "-crowd-chance"},
		{[]string{"-crowd-expected", "0"}, "-crowd-expected"},
		{[]string{"-crowd-expected", "NaN"}, "-crowd-expected"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg := DefaultConfig()
			cfg.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("Validate: %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestDetectionsWriter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DetectionBatchSize, cfg.DetectionLinger = 77, 3*time.Millisecond
	tr := &kafka.Transport{}
	kc := service.KafkaConfig{Brokers: []string{"127.0.0.1:1"}, MaxMessageBytes: service.DefaultMaxMessageBytes}
	w := cfg.DetectionsWriter(kc.Writer("detections", tr))
	defer w.Close()
	// kafka-go's defaults (no acks, 1 s linger) are traps; these are set
	// on purpose.
	if w.RequiredAcks != kafka.RequireAll || w.BatchTimeout != 3*time.Millisecond || w.BatchSize != 77 ||
		w.Transport != tr || w.Topic != "detections" || w.BatchBytes != kc.BatchBytes() {
		t.Errorf("writer %+v", w)
	}
	if _, ok := w.Balancer.(*kafka.Murmur2Balancer); !ok {
		t.Errorf("balancer %T, want keys hashed as the Java client does", w.Balancer)
	}
}
