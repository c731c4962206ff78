package kong

// Config is a parsed, validated Kong declarative configuration
// (_format_version "3.0"), with defaults filled in and references resolved.
// Nested and top-level entities end up in the same lists, in file order
// (nested entities right after their parent's earlier siblings' children).
type Config struct {
	FormatVersion  string
	Transform      bool
	Services       []*Service
	Routes         []*Route
	Upstreams      []*Upstream
	Certificates   []*Certificate
	CACertificates []*CACertificate
}

// Service is a Kong service. Port defaults to 80 (443 for https/grpcs).
type Service struct {
	ID, Name       string
	Protocol       string
	Host           string
	Port           int
	Path           string // "" when unset
	Retries        int
	ConnectTimeout int // milliseconds
	ReadTimeout    int
	WriteTimeout   int
	TLSVerify      *bool
	TLSVerifyDepth *int
	CACertificates []string // ids
	ClientCertID   string
	Enabled        bool
	Tags           []string
	FilterChain    *FilterChain // at most one
	Routes         []*Route
	upstream       *Upstream // set when Host names an upstream
	index          int
}

// Upstream reports the upstream the service's host names, or nil.
func (s *Service) Upstream() *Upstream { return s.upstream }

// Route is a Kong route (HTTP protocols only).
type Route struct {
	ID, Name                string
	Protocols               []string
	Methods                 []string
	Hosts                   []string
	Paths                   []string
	Headers                 map[string][]string
	SNIs                    []string
	StripPath               bool
	PreserveHost            bool
	RegexPriority           int
	PathHandling            string
	HTTPSRedirectStatusCode int
	RequestBuffering        bool
	ResponseBuffering       bool
	Tags                    []string
	Service                 *Service // nil for a route without a service
	FilterChain             *FilterChain
	index                   int
}

// FilterChain is a Kong filter chain on a service or a route.
type FilterChain struct {
	ID, Name string
	Enabled  bool
	Filters  []Filter
	Tags     []string
}

// Filter is one filter of a chain. Config is the configuration string as
// the filter receives it: the string given, or the JSON object serialized.
type Filter struct {
	Name      string
	Config    string
	HasConfig bool
	Enabled   bool
}

// Upstream is a Kong upstream with its targets.
type Upstream struct {
	ID, Name               string
	Algorithm              string
	HashOn                 string
	HashFallback           string
	HashOnHeader           string
	HashFallbackHeader     string
	HashOnCookie           string
	HashOnCookiePath       string
	HashOnQueryArg         string
	HashFallbackQueryArg   string
	HashOnURICapture       string
	HashFallbackURICapture string
	Slots                  int
	HostHeader             string
	Healthchecks           Healthchecks
	Tags                   []string
	Targets                []*Target
}

// Target is one upstream target.
type Target struct {
	ID     string
	Host   string
	Port   int
	Weight int
	Tags   []string
}

// Healthchecks are an upstream's active and passive checks.
type Healthchecks struct {
	Active    ActiveCheck
	Passive   PassiveCheck
	Threshold float64
}

// ActiveCheck probes targets. Zero intervals disable it (Kong's default).
type ActiveCheck struct {
	Type                   string
	Timeout                float64 // seconds
	Concurrency            int
	HTTPPath               string
	HTTPSSNI               string
	HTTPSVerifyCertificate bool
	Headers                map[string][]string
	Healthy                Thresholds
	Unhealthy              Thresholds
}

// PassiveCheck watches proxied traffic.
type PassiveCheck struct {
	Type      string
	Healthy   Thresholds
	Unhealthy Thresholds
}

// Thresholds of a check; Interval is in seconds (active only).
type Thresholds struct {
	Interval     float64
	HTTPStatuses []int
	Successes    int
	HTTPFailures int
	TCPFailures  int
	Timeouts     int
}

// Certificate is a certificate with its SNIs.
type Certificate struct {
	ID      string
	Cert    string
	Key     string
	CertAlt string
	KeyAlt  string
	SNIs    []string
	Tags    []string
}

// CACertificate is a trusted CA for upstream verification.
type CACertificate struct {
	ID         string
	Cert       string
	CertDigest string
	Tags       []string
}
