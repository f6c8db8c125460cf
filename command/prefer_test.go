package command

import "testing"

func TestPreferWait(t *testing.T) {
	for name, tc := range map[string]struct {
		values []string
		want   int
	}{
		"OK":                 {[]string{"wait=5"}, 5},
		"OKCappedAtMaxWait":  {[]string{"wait=45"}, MaxWait},
		"OKHuge":             {[]string{"wait=999999999999"}, MaxWait},
		"OKOverflow":         {[]string{"wait=99999999999999999999999"}, MaxWait},
		"OKAmongOthers":      {[]string{"respond-async, wait=3; x=y"}, 3},
		"OKSecondHeader":     {[]string{"return=minimal", "WAIT=2"}, 2},
		"OKQuoted":           {[]string{`wait="7"`}, 7},
		"ErrAbsent":          {nil, 0},
		"ErrZero":            {[]string{"wait=0"}, 0},
		"ErrNegative":        {[]string{"wait=-1"}, 0},
		"ErrNotANumber":      {[]string{"wait=soon"}, 0},
		"ErrOtherPreference": {[]string{"respond-async"}, 0},
	} {
		t.Run(name, func(t *testing.T) {
			if got := preferWait(tc.values); got != tc.want {
				t.Fatalf("preferWait(%q) = %d, want %d", tc.values, got, tc.want)
			}
		})
	}
}
