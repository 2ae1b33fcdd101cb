// The service counts offsets in code points (Python str indices); JavaScript strings count UTF-16
// units, so any character outside the Basic Multilingual Plane (an emoji) shifts them by one.

/** The UTF-16 index in `text` of code point offset `cp`. */
export function utf16Index(text, cp) {
  let units = 0;
  let points = 0;
  while (points < cp && units < text.length) {
    const code = text.charCodeAt(units);
    units += code >= 0xd800 && code <= 0xdbff && units + 1 < text.length ? 2 : 1;
    points += 1;
  }
  return units;
}
