// A tab's requests to its own plugin's JSON routes. Each plugin serves this module beside its index.js, so
// a route resolves against this module's URL: /data/plugin/<name>/<route>.

// The URL of one of the plugin's routes, with the parameters that have a value.
export function route(name, params = {}) {
  const url = new URL(`./${name}`, import.meta.url);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

// A route's JSON; a route that answers an error throws it with the route's own message ({"error": ...}).
export async function get(name, params) {
  const response = await fetch(route(name, params));
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}
