package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/anomalyd/anomalyd/internal/testenv"
)

// writerEnv is a one-partition topic on an in-process broker with Kafka's
// default message.max.bytes, and the config of a service writing to it.
func writerEnv(t *testing.T) (KafkaConfig, *kafka.Transport) {
	t.Helper()
	k, err := testenv.StartKafka(t.Context(), testenv.KafkaOptions{Topics: []string{"out"}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	tr := &kafka.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return KafkaConfig{Brokers: k.Brokers(), MaxMessageBytes: DefaultMaxMessageBytes}, tr
}

// readAll reads n messages of topic "out" from the start.
func readAll(t *testing.T, kc KafkaConfig, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Topic: "out", MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// TestWriterFitsBrokerLimit writes a batch of 3 MiB of records for one
// partition, more than a broker accepts in one produce request: the
// services' writer splits it, where one request of all of it is refused
// as too large, which retrying cannot cure.
func TestWriterFitsBrokerLimit(t *testing.T) {
	kc, tr := writerEnv(t)
	msgs := make([]kafka.Message, 3000)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("site|visitor"), Value: bytes.Repeat([]byte{'a' + byte(i%26)}, 1024)}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	unsplit := kc.Writer("out", tr)
	unsplit.BatchSize, unsplit.BatchBytes, unsplit.MaxAttempts = len(msgs), 64<<20, 1
	err := unsplit.WriteMessages(ctx, msgs...)
	unsplit.Close()
	if err == nil || !TooLarge(err) {
		t.Fatalf("one produce request of 3 MiB: %v, want the broker to refuse it as too large", err)
	}

	w := kc.Writer("out", tr)
	w.BatchSize = len(msgs)
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("writing %d messages of 1 KiB: %v", len(msgs), err)
	}
	got := readAll(t, kc, len(msgs))
	for i := range got {
		if !bytes.Equal(got[i].Value, msgs[i].Value) {
			t.Fatalf("message %d differs: %.20q, want %.20q", i, got[i].Value, msgs[i].Value)
		}
	}
}

// TestDeadLetterWriterFits dead-letters an event as large as a broker
// accepts: with its headers it would be refused for ever, so its value is
// cut to fit and says how long it was; small dead letters are untouched.
func TestDeadLetterWriterFits(t *testing.T) {
	kc, tr := writerEnv(t)
	big := bytes.Repeat([]byte("x"), DefaultMaxMessageBytes-200)
	small := []byte(`{"ClientIP": 7}`)
	in := []kafka.Message{
		{Topic: "requests", Partition: 3, Offset: 41, Key: []byte("k"), Value: big},
		{Topic: "requests", Partition: 3, Offset: 42, Key: []byte("k"), Value: small},
	}
	w := DeadLetterWriter{Writer: kc.Writer("out", tr)}
	defer w.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dead := []kafka.Message{DeadLetter(in[0], errors.New("malformed event: too long")), DeadLetter(in[1], errors.New("malformed event: field ClientIP: want a string"))}
	if err := w.WriteMessages(ctx, dead...); err != nil {
		t.Fatalf("writing dead letters: %v", err)
	}
	got := readAll(t, kc, 2)

	header := func(m kafka.Message, key string) (string, bool) {
		for _, h := range m.Headers {
			if h.Key == key {
				return string(h.Value), true
			}
		}
		return "", false
	}
	cut := got[0]
	if n, ok := header(cut, HeaderTruncated); !ok || n != strconv.Itoa(len(big)) {
		t.Errorf("large dead letter: %s %q, want the original length %d", HeaderTruncated, n, len(big))
	}
	if len(cut.Value) == 0 || len(cut.Value) >= len(big) || !bytes.HasPrefix(big, cut.Value) {
		t.Errorf("large dead letter: value of %d bytes, want a shorter prefix of the %d", len(cut.Value), len(big))
	}
	if r, _ := header(cut, HeaderReason); r != "malformed event: too long" {
		t.Errorf("large dead letter: reason %q", r)
	}
	if s, _ := header(cut, HeaderSource); s != "requests/3/41" {
		t.Errorf("large dead letter: source %q", s)
	}
	if !bytes.Equal(got[1].Value, small) {
		t.Errorf("small dead letter: value %q, want %q", got[1].Value, small)
	}
	if _, ok := header(got[1], HeaderTruncated); ok {
		t.Errorf("small dead letter marked %s", HeaderTruncated)
	}
}

// TestKafkaTLSAndSASL writes and reads through the services' Kafka
// transport and dialer to a broker that takes only TLS and SASL/SCRAM:
// with the CA and the credentials it works; a wrong password or a client
// without the CA is refused.
func TestKafkaTLSAndSASL(t *testing.T) {
	ca := testenv.NewCA(t, "kafka CA")
	certFile, keyFile := ca.Issue(t, "broker", x509.ExtKeyUsageServerAuth)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	const user, password = "detector", "scram-secret-0123"
	k, err := testenv.StartKafka(t.Context(), testenv.KafkaOptions{Topics: []string{"out"}, Partitions: 1, Extra: []kfake.Opt{
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, password),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })

	tests := []struct {
		name    string
		cfg     KafkaConfig
		wantErr string
	}{
		{"TLS and SCRAM", KafkaConfig{CAFile: ca.File, SASL: "SCRAM-SHA-512", User: user, Password: password}, ""},
		// The broker hangs up on a failed SCRAM exchange.
		{"wrong password", KafkaConfig{CAFile: ca.File, SASL: "SCRAM-SHA-512", User: user, Password: "guess"}, "EOF"},
		{"CA not trusted", KafkaConfig{TLS: true, SASL: "SCRAM-SHA-512", User: user, Password: password}, "certificate"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Brokers, tt.cfg.MaxMessageBytes = k.Brokers(), DefaultMaxMessageBytes
			if err := tt.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			dialer, transport, err := tt.cfg.Clients()
			if err != nil {
				t.Fatal(err)
			}
			defer transport.CloseIdleConnections()
			w := tt.cfg.Writer("out", transport)
			w.MaxAttempts = 1
			defer w.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			value := []byte("message " + strconv.Itoa(i))
			err = w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: value})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("write: %v, want an error about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: tt.cfg.Brokers, Dialer: dialer, Topic: "out", MaxWait: 100 * time.Millisecond})
			defer r.Close()
			m, err := r.ReadMessage(ctx)
			if err != nil || !bytes.Equal(m.Value, value) {
				t.Fatalf("read: %q, %v; want %q", m.Value, err, value)
			}
		})
	}
}

// TestDeadLetterReasonIsBounded: a reason that quotes a hostile value at
// length is cut to MaxReason bytes, on a character boundary.
func TestDeadLetterReasonIsBounded(t *testing.T) {
	long := errors.New("invalid JSON: unexpected value found: " + strings.Repeat("é", 2000))
	m := DeadLetter(kafka.Message{Value: []byte("x")}, long)
	var reason []byte
	for _, h := range m.Headers {
		if h.Key == HeaderReason {
			reason = h.Value
		}
	}
	if len(reason) > MaxReason || !utf8.Valid(reason) || !bytes.HasPrefix(reason, []byte("invalid JSON: unexpected value found: é")) || !bytes.HasSuffix(reason, []byte("...")) {
		t.Errorf("reason of %d bytes (valid UTF-8: %v): %.80q...", len(reason), utf8.Valid(reason), reason)
	}
	short := DeadLetter(kafka.Message{}, errors.New("field \"ClientIP\": missing"))
	if got := string(short.Headers[0].Value); got != `field "ClientIP": missing` {
		t.Errorf("a short reason became %q", got)
	}
}

// TestKafkaClients: the clients of Open read in the service's group what
// its writers wrote, and Close closes every one of them, once.
func TestKafkaClients(t *testing.T) {
	k, err := testenv.StartKafka(t.Context(), testenv.KafkaOptions{Topics: []string{"in", "deadletter"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	c := KafkaConfig{Brokers: k.Brokers(), MaxMessageBytes: DefaultMaxMessageBytes, Group: "g", DeadLetterTopic: "deadletter"}
	kc, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	w := kc.Writer("in")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if err := kc.DeadLetters().WriteMessages(ctx, kafka.Message{Value: []byte("bad")}); err != nil {
		t.Fatal(err)
	}
	r := kc.Reader("in", 10)
	m, err := r.FetchMessage(ctx)
	if err != nil || string(m.Value) != "v" {
		t.Fatalf("read %q, %v", m.Value, err)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatal(err)
	}
	if r.Config().GroupID != "g" {
		t.Errorf("reader of group %q", r.Config().GroupID)
	}
	if err := kc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.FetchMessage(ctx); err == nil {
		t.Error("the reader reads after Close")
	}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("late")}); err == nil {
		t.Error("the writer writes after Close")
	}
	if err := kc.Close(); err != nil {
		t.Errorf("closing again: %v", err)
	}
}
