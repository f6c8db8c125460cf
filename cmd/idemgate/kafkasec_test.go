package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/idemgate/idemgate/events"
	"github.com/idemgate/idemgate/testenv"
)

// saslBroker is a real broker of the test's own with a SASL_SSL listener
// (scripts/kafka.sh), its certificates signed by a CA made for the test,
// and ACLs: a SASL user may do only what the administrator (the plaintext
// listener) grants it.
type saslBroker struct {
	addr   string // the SASL_SSL listener
	caFile string
	users  map[string]string
	admin  *kadm.Client // on the plaintext listener, a super user
}

// startSASLBroker starts the broker on ports out of the ephemeral range
// and a run dir of t's own, and stops it when t ends.
func startSASLBroker(t *testing.T) *saslBroker {
	t.Helper()
	dir := t.TempDir()
	caFile, keystore := writeTestPKI(t, dir)
	b := &saslBroker{caFile: caFile, users: map[string]string{"alice": "alice-" + randomWord(t), "bob": "bob-" + randomWord(t),
		"carol": "carol-" + randomWord(t)}}
	var users []string
	for name, pass := range b.users {
		users = append(users, name+":"+pass)
	}
	script, err := filepath.Abs("../../scripts/kafka.sh")
	if err != nil {
		t.Fatal(err)
	}
	// The JVM binds its own ports: they cannot be held for it (testenv.Port).
	// It starts on ports out of the kernel's ephemeral range, where no
	// outgoing connection takes one; if another listener has one, the
	// start fails saying so (the broker's "Address already in use", or
	// kafka.sh's "port N is already in use"), and it starts again on others.
	var vars []string
	var plainPort int
	stop := func() {
		if vars == nil {
			return
		}
		cmd := exec.Command(script, "stop")
		cmd.Env = vars
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("kafka.sh stop: %v\n%s", err, out)
		}
	}
	t.Cleanup(stop) // before the run dir is removed
	var t0 time.Time
	for attempt := 1; ; attempt++ {
		ports := listenPorts(t, 3)
		plainPort, b.addr = ports[0], "127.0.0.1:"+strconv.Itoa(ports[2])
		vars = append(os.Environ(),
			"KAFKA_RUN_DIR="+filepath.Join(dir, "kafka"),
			"KAFKA_PORT="+strconv.Itoa(plainPort),
			"KAFKA_CONTROLLER_PORT="+strconv.Itoa(ports[1]),
			"KAFKA_SASL_SSL_PORT="+strconv.Itoa(ports[2]),
			"KAFKA_SSL_KEYSTORE_PEM="+keystore,
			"KAFKA_SASL_USERS="+strings.Join(users, ","),
			"KAFKA_AUTHORIZER=1",
			"KAFKA_HEAP_OPTS=-Xmx256m -Xms256m",
		)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, script, "start")
		cmd.Env = vars
		var stderr syncBuffer
		cmd.Stderr = &stderr
		t0 = time.Now()
		out, err := cmd.Output()
		cancel()
		if err == nil && strings.HasPrefix(string(out), "KAFKA_BROKERS=") {
			break
		}
		if !strings.Contains(stderr.String(), "already in use") || attempt == 5 {
			t.Fatalf("scripts/kafka.sh start (Java and Maven are needed): %v\n%s%s", err, out, stderr.String())
		}
		t.Logf("a port of %v is another listener's; starting on others", ports)
		stop()
	}
	t.Logf("SASL_SSL broker on %s started in %s", b.addr, time.Since(t0).Round(time.Millisecond))
	cl, err := kgo.NewClient(testenv.KafkaOptions(t, []string{"127.0.0.1:" + strconv.Itoa(plainPort)})...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	b.admin = kadm.NewClient(cl)
	// alice and bob may do anything with any topic and group; carol gets
	// her own grants in the test that uses her.
	b.grant(t, kadm.NewACLs().Allow("User:alice", "User:bob").Topics("*").Groups("*").Operations(kadm.OpAll))
	return b
}

// grant creates the ACLs acls describes.
func (b *saslBroker) grant(t *testing.T, acls *kadm.ACLBuilder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.admin.CreateACLs(ctx, acls)
	if err != nil {
		t.Fatalf("create ACLs: %v", err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create ACL %s %s %s: %v %s", r.Principal, r.Name, r.Operation, r.Err, r.ErrMessage)
		}
	}
}

// writeTestPKI makes a CA and a server certificate for 127.0.0.1 and
// localhost; it returns the CA's PEM file and the broker's keystore (its
// PKCS#8 key and certificate in one PEM file).
func writeTestPKI(t *testing.T, dir string) (caFile, keystore string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idemgate test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, keystore = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "broker-keystore.pem")
	ks := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})...)
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keystore, ks, 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, keystore
}

func randomWord(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(uint64(b[0])<<40|uint64(b[1])<<32|uint64(b[2])<<24|uint64(b[3])<<16|uint64(b[4])<<8|uint64(b[5]), 36)
}

// TestKafkaSecurity runs idemgate's clients on a SASL_SSL listener of a
// real broker: each SASL mechanism produces and consumes, the whole
// stack completes a payment over it, and a wrong password, an unknown
// CA or plaintext on the TLS port each fail at once with one line naming
// the cause instead of being retried like a broker that is down.
func TestKafkaSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a real Kafka broker (scripts/kafka.sh)")
	}
	b := startSASLBroker(t)
	secure := func(mechanism, user, pass string) events.KafkaConfig {
		return events.KafkaConfig{TLS: true, CAFile: b.caFile, SASLMechanism: mechanism, SASLUsername: user, SASLPassword: pass}
	}

	t.Run("Mechanisms", func(t *testing.T) {
		for _, mech := range []string{events.SASLPlain, events.SASLScramSHA256, events.SASLScramSHA512} {
			t.Run(mech, func(t *testing.T) {
				produceAndConsume(t, secure(mech, "bob", b.users["bob"]), b.addr, "sec-"+strings.ToLower(mech))
			})
		}
	})

	t.Run("Stack", func(t *testing.T) {
		pwFile := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(pwFile, []byte(b.users["alice"]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := startStack(t, "KAFKA_BROKERS", b.addr, "KAFKA_TLS_CA_FILE", b.caFile, "KAFKA_SASL_MECHANISM", "scram-sha-512",
			"KAFKA_SASL_USERNAME", "alice", "KAFKA_SASL_PASSWORD_FILE", pwFile)
		r := s.postPayment("key-a", "over-sasl-ssl", payment)
		mustEqual(t, "status", r.Status, 202)
		s.waitCompleted("key-a", r.Header.Get("Location"))
	})

	t.Run("PreCreatedTopics", func(t *testing.T) {
		// A platform team created the topics and granted carol Describe,
		// Read and Write on them and Read on her group, not Create.
		prefix := "pre" + randomWord(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topics := events.TopicsWithPrefix(prefix)
		if _, err := b.admin.CreateTopics(ctx, 3, 1, nil, topics.All()...); err != nil {
			t.Fatal(err)
		}
		b.grant(t, kadm.NewACLs().Allow("User:carol").Topics(prefix).Groups(prefix).ResourcePatternType(kadm.ACLPatternPrefixed).
			Operations(kadm.OpDescribe, kadm.OpRead, kadm.OpWrite))
		carol := []string{"KAFKA_BROKERS", b.addr, "KAFKA_TLS_CA_FILE", b.caFile, "KAFKA_SASL_MECHANISM", "SCRAM-SHA-256",
			"KAFKA_SASL_USERNAME", "carol", "KAFKA_SASL_PASSWORD", b.users["carol"]}
		s := startStack(t, append(carol, "IDEMGATE_TOPIC_PREFIX", prefix, "IDEMGATE_GROUP", prefix+"-projector")...)
		r := s.postPayment("key-a", "on-pre-created-topics", payment)
		mustEqual(t, "status", r.Status, 202)
		s.waitCompleted("key-a", r.Header.Get("Location"))

		// Topics that do not exist, which carol may not create: one line.
		err := runRole(t, "relay", append(carol, "IDEMGATE_TOPIC_PREFIX", prefix+"x")...)
		if r := events.Refused(err); r == nil || !strings.Contains(r.Error(), "does not exist and the broker's ACLs deny creating it") {
			t.Fatalf("relay on topics carol may not create: %v; want a refusal naming the topic", err)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		// The binary itself, so that what ends is a process: its exit
		// status and the last line it prints.
		p := startSelf(t, "project", []string{"DATABASE_URL=" + newDatabase(t), "KAFKA_BROKERS=" + b.addr, "KAFKA_TLS_CA_FILE=" + b.caFile,
			"KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "KAFKA_SASL_USERNAME=alice", "KAFKA_SASL_PASSWORD=not-" + b.users["alice"],
			"IDEMGATE_TOPIC_PREFIX=t" + randomWord(t)}, "project")
		t0 := time.Now()
		select {
		case <-p.Done():
		case <-time.After(60 * time.Second): // a liveness bound: a retry loop would never end
			t.Fatal("idemgate project with a wrong password still runs after 60s")
		}
		if code := p.State().ExitCode(); code != 1 {
			t.Fatalf("exit = %v, want status 1", p.State())
		}
		last := strings.TrimSpace(p.Log.Tail(1))
		if !strings.HasPrefix(last, "idemgate: kafka refused the client: SASL authentication failed") {
			t.Fatalf("last line = %q, want it to name the SASL authentication failure", last)
		}
		if retried := p.Log.Matching(regexp.MustCompile(`retrying`), time.Time{}); len(retried) > 0 {
			t.Fatalf("the refusal was retried: %q", retried[0].Text)
		}
		t.Logf("exited after %s: %s", time.Since(t0).Round(time.Millisecond), last)
	})

	t.Run("UnknownCA", func(t *testing.T) {
		// Without KAFKA_TLS_CA_FILE the system's roots, which do not know
		// the test's CA, verify the broker.
		cfg := secure(events.SASLScramSHA256, "bob", b.users["bob"])
		cfg.CAFile = ""
		err := ping(t, cfg, b.addr)
		var unknown x509.UnknownAuthorityError
		if r := events.Refused(err); r == nil || !errors.As(err, &unknown) || !strings.Contains(r.Error(), "certificate does not verify") {
			t.Fatalf("ping without the CA: %v; want a refusal for an unknown authority", err)
		}
		err = runRole(t, "relay", "KAFKA_BROKERS", b.addr, "KAFKA_TLS", "true",
			"KAFKA_SASL_MECHANISM", "SCRAM-SHA-256", "KAFKA_SASL_USERNAME", "bob", "KAFKA_SASL_PASSWORD", b.users["bob"])
		if r := events.Refused(err); r == nil || !errors.As(err, &unknown) {
			t.Fatalf("relay without the CA: %v; want a refusal for an unknown authority", err)
		}
	})

	t.Run("PlaintextOnTLSPort", func(t *testing.T) {
		err := ping(t, events.KafkaConfig{SASLMechanism: events.SASLScramSHA256, SASLUsername: "bob", SASLPassword: b.users["bob"]}, b.addr)
		if r := events.Refused(err); r == nil {
			t.Fatalf("plaintext client on the TLS port: %v; want a refusal", err)
		}
		err = runRole(t, "relay", "KAFKA_BROKERS", b.addr)
		if r := events.Refused(err); r == nil || !strings.Contains(r.Error(), "plaintext client on the broker's TLS listener") {
			t.Fatalf("relay in plaintext on the TLS port: %v; want a refusal", err)
		}
	})
}

// runRole runs an idemgate role through run() on a database of t's own
// with the given variable name/value pairs, and returns its error; a
// role still running after a minute (retrying) fails t.
func runRole(t *testing.T, role string, vars ...string) error {
	t.Helper()
	m := map[string]string{"DATABASE_URL": newDatabase(t), "IDEMGATE_TOPIC_PREFIX": "t" + randomWord(t), "IDEMGATE_PARTITIONS": "3"}
	for i := 0; i+1 < len(vars); i += 2 {
		m[vars[i]] = vars[i+1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs syncBuffer
	err := run(ctx, []string{role}, func(k string) string { return m[k] }, &logs, &logs)
	if ctx.Err() != nil {
		t.Fatalf("%s still ran after a minute: %v\n%s", role, err, logs.String())
	}
	return err
}

// produceAndConsume writes a record to topic under cfg and reads it back.
func produceAndConsume(t *testing.T, cfg events.KafkaConfig, addr, topic string) {
	t.Helper()
	opts, err := cfg.ClientOptions([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, err := kgo.NewClient(append(opts, kgo.AllowAutoTopicCreation())...)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	want := "hello over " + cfg.SASLMechanism + " " + randomWord(t)
	if err := pr.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(want)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	co, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	for {
		f := co.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume: nothing read: %v", f.Errors())
		}
		for _, r := range f.Records() {
			if string(r.Value) == want {
				return
			}
		}
	}
}

// ping is a client's first request under cfg; the refusal tests expect
// it to fail well within its deadline.
func ping(t *testing.T, cfg events.KafkaConfig, addr string) error {
	t.Helper()
	opts, err := cfg.ClientOptions([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = cl.Ping(ctx)
	if ctx.Err() != nil {
		t.Fatalf("ping did not fail before its deadline: %v", err)
	}
	return err
}

// belowEphemeral is the range [base, low) of the 2768 ports below the
// kernel's ephemeral range, which starts at low; it fails t if the range
// holds fewer than n ports.
func belowEphemeral(t *testing.T, n int) (base, low int) {
	t.Helper()
	low = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	base = max(1024, low-2768)
	if low-base < n {
		t.Fatalf("no room below the ephemeral range (%d)", low)
	}
	return base, low
}

// listenPorts draws n distinct ports for a server that binds them itself,
// from the 2768 ports below the kernel's ephemeral range (30000-32767 by
// default; no fixed port of the repository's scripts is there). Whoever
// starts the server must retry on others when one is in use.
func listenPorts(t *testing.T, n int) []int {
	t.Helper()
	base, low := belowEphemeral(t, n)
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		p := base + mathrand.IntN(low-base)
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports
}
