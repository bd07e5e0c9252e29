/* CSRF for every script: same-origin fetch calls that change something carry the
   X-CSRFToken header, read from <meta name="csrf-token"> (base.html). Forms carry
   the token as a hidden field instead. Loaded before every other script. */
"use strict";
window.Hark = window.Hark || {};

(function (Hark) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const SAFE = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

  Hark.csrfToken = () => (meta ? meta.content : "");

  const originalFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    const options = init ? { ...init } : {};
    const method = (options.method || (input instanceof Request ? input.method : "GET")).toUpperCase();
    const url = new URL(input instanceof Request ? input.url : String(input), window.location.href);
    if (!SAFE.has(method) && url.origin === window.location.origin && Hark.csrfToken()) {
      const headers = new Headers(options.headers || (input instanceof Request ? input.headers : undefined));
      if (!headers.has("X-CSRFToken")) headers.set("X-CSRFToken", Hark.csrfToken());
      options.headers = headers;
    }
    return originalFetch(input, options);
  };
})(window.Hark);
