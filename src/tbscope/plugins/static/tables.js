// Tables shared by the tabs and the offline report (which inlines this module after charts.js): a table
// that sorts on a click on its header, and a search box.

import { el } from "./charts.js";

// ``columns`` are [key, label, format?, title?]: format(value, row) is the cell's text, title(value, row) its
// tooltip; rows are objects, or arrays with the column's index as its key. A click on a header sorts by it
// (numbers largest first, text A to Z; again reverses; rows without a value last). Options: limit (rows shown),
// onRow(row) (a click on a row), text (keys left-aligned like names), numeric (keys of class "num"),
// attributes (of the table, besides its id).
export function sortableTable(id, columns, rows, options = {}) {
  const table = el("table", { id, ...options.attributes });
  const head = el("tr");
  const body = el("tbody");
  let sortKey = null, ascending = false;
  const has = (option, key) => Boolean(options[option] && options[option].includes(key));
  const cellClass = (key) => (key === "name" ? "name" : key === "call_stack" ? "stack" : has("text", key) ? "text" : has("numeric", key) ? "num" : "");
  const none = (v) => v === null || v === undefined;
  const order = (x, y) => (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
  const fill = () => {
    body.replaceChildren(...rows.slice(0, options.limit || rows.length).map((row) => {
      const tr = el("tr", {}, ...columns.map(([key, , format, title]) => {
        const value = row[key];
        const shown = none(value) ? "-" : format ? format(value, row) : String(value);
        return el("td", { class: cellClass(key), title: title ? title(value, row) : String(value ?? "") }, shown);
      }));
      if (options.onRow) {
        tr.style.cursor = "pointer";
        tr.addEventListener("click", () => options.onRow(row));
      }
      return tr;
    }));
  };
  for (const [key, label] of columns) {
    const th = el("th", { class: cellClass(key), "data-key": key }, label);
    th.addEventListener("click", () => {
      ascending = sortKey === key ? !ascending : typeof rows[0]?.[key] === "string";
      sortKey = key;
      rows.sort((a, b) => (none(a[key]) || none(b[key]) ? none(a[key]) - none(b[key]) : order(a[key], b[key]) * (ascending ? 1 : -1)));
      fill();
    });
    head.append(th);
  }
  table.append(el("thead", {}, head), body);
  fill();
  return table;
}

// A search box above any number of tables: onChange gets the text, trimmed and in lower case.
export function searchBox(id, placeholder, onChange) {
  const input = el("input", { id, type: "search", placeholder, size: 40 });
  input.addEventListener("input", () => onChange(input.value.trim().toLowerCase()));
  return input;
}
