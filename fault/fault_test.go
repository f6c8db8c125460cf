package fault

import (
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	t.Run("Off", func(t *testing.T) {
		in, err := FromEnv(func(string) string { return "" })
		if err != nil || in != nil {
			t.Fatalf("in, err = %v, %v; want nil, nil", in, err)
		}
		in.Hit(AfterClaimCommit) // a nil injector never fires
	})
	t.Run("FiresAtOddsOne", func(t *testing.T) {
		in, err := FromEnv(func(string) string { return AfterKafkaAck + "=1," + InProjectorTx + "=0" })
		if err != nil {
			t.Fatal(err)
		}
		var died []string
		in.die = func(p string) { died = append(died, p) }
		in.Hit(InProjectorTx)
		in.Hit(AfterKafkaAck)
		in.Hit(AfterRelayPublish)
		if len(died) != 1 || died[0] != AfterKafkaAck {
			t.Fatalf("died at %v; want only %s", died, AfterKafkaAck)
		}
	})
	t.Run("MutationFires", func(t *testing.T) {
		in, err := FromEnv(func(string) string { return ReplayOtherAnswer + "=1" })
		if err != nil {
			t.Fatal(err)
		}
		if !in.Fires(ReplayOtherAnswer) || in.Fires(AfterKafkaAck) {
			t.Fatal("a mutation point at odds 1 must fire, and only it")
		}
		var nilInjector *Injector
		if nilInjector.Fires(ReplayOtherAnswer) {
			t.Fatal("a nil injector fired")
		}
	})
	for name, spec := range map[string]string{
		"ErrUnknownPoint": "api.somewhere=0.5",
		"ErrOdds":         AfterClaimCommit + "=2",
		"ErrSyntax":       AfterClaimCommit,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := FromEnv(func(string) string { return spec }); err == nil || !strings.Contains(err.Error(), "IDEMGATE_FAULTS") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
