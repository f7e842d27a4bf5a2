// Dark mode for the tabs: TensorBoard's own, read from the page around this frame (same origin), or the
// browser's preference. Shared by every tab (each plugin serves it beside its index.js) and the offline
// report (which inlines it: no import here).

function parentDark() {
  try {
    const body = window.parent !== window ? window.parent.document.body : null;
    return body ? body.classList.contains("dark-mode") : null;
  } catch (error) {
    return null; // another origin: fall back to the browser's preference
  }
}

export const themeListeners = new Set();
export const isDark = () => document.documentElement.classList.contains("dark");

export function followTheme() {
  const query = window.matchMedia("(prefers-color-scheme: dark)");
  const apply = () => {
    const fromParent = parentDark();
    const dark = fromParent === null ? query.matches : fromParent;
    if (dark !== isDark()) {
      document.documentElement.classList.toggle("dark", dark);
      for (const listener of themeListeners) listener();
    }
  };
  apply();
  query.addEventListener("change", apply);
  try {
    if (window.parent !== window) {
      new MutationObserver(apply).observe(window.parent.document.body, { attributes: true, attributeFilter: ["class"] });
    }
  } catch (error) {
    // another origin: prefers-color-scheme alone
  }
}

export const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
