#pragma once
// The page's own stylesheet and scripts (page_assets.cpp): plain JS, no libraries besides Vega.
namespace qmeter::report::detail {

// Runs first in <head>: records errors, console.error/warn calls and CSP violations (any network
// request the page would make is one) for the self-check.
extern const char* const kEarlyScript;
// Renders the charts and the table, then writes the self-check into <pre id="qmeter-selfcheck">
// and document.title.
extern const char* const kPageScript;
extern const char* const kStyle;
// Content-Security-Policy of the page: no network access at all (eval is needed by Vega's
// expression compiler).
extern const char* const kContentSecurityPolicy;

}  // namespace qmeter::report::detail
