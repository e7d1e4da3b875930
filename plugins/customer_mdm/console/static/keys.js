/* Keyboard shortcuts for the console (optional: every action also works without JavaScript).
   A button with data-key="m" is pressed by the key m; j/k follow the next/previous queue link. */
(function () {
  document.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) return;
    var button = document.querySelector('button[data-key="' + e.key + '"]');
    if (button) { e.preventDefault(); button.click(); return; }
    if (e.key === "j") { var next = document.querySelector('a[data-nav="1"]'); if (next) { next.click(); } }
    if (e.key === "k") { history.back(); }
  });
})();
