// Tables shared by the tabs: a table that sorts on a click on its header, and a search box.

import { el } from "./charts.js";

// ``columns`` are [key, label, format?, title?]: format(value, row) is the cell's text, title(value, row) its
// tooltip. A click on a header sorts by it (numbers largest first, text A to Z; again reverses). Options:
// limit (rows shown), onRow(row) (a click on a row), text (keys left-aligned like names), attributes (of the
// table, besides its id).
export function sortableTable(id, columns, rows, options = {}) {
  const table = el("table", { id, ...options.attributes });
  const head = el("tr");
  const body = el("tbody");
  let sortKey = null, ascending = false;
  const cellClass = (key) => (key === "name" ? "name" : key === "call_stack" ? "stack" : options.text && options.text.includes(key) ? "text" : "");
  const fill = () => {
    body.replaceChildren(...rows.slice(0, options.limit || rows.length).map((row) => {
      const tr = el("tr", {}, ...columns.map(([key, , format, title]) => {
        const value = row[key];
        const shown = value === null || value === undefined ? "-" : format ? format(value, row) : String(value);
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
      rows.sort((a, b) => ((a[key] ?? -Infinity) > (b[key] ?? -Infinity) ? 1 : (a[key] ?? -Infinity) < (b[key] ?? -Infinity) ? -1 : 0) * (ascending ? 1 : -1));
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
