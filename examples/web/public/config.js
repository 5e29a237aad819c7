// Where the API is: the gateway's origin, and optionally the usage function's own URL and
// where the generation event stream is served (the generations function's own URL, when
// the gateway buffers). Empty apiBase means this page's own origin; empty eventsUrl means
// apiBase (the page polls where the stream is missing or fails). A deployment replaces
// this file (no rebuild); `?api=https://…` overrides it for one visit.
window.REEL_CONFIG = {
  apiBase: "",
  usageFunctionUrl: "",
  eventsUrl: "",
};
