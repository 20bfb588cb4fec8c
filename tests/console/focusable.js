// The controls Tab should reach, in document order (run by tests/console/browser.py).
const all = document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea");
return Array.from(all).filter((el) => !el.disabled && el.tabIndex >= 0 && !el.closest("[hidden]"));
