/** Tailwind scans the page and its modules. */
export default {
  content: ["webapp/index.html", "webapp/js/**/*.js"],
  darkMode: "class",
  theme: {
    extend: {
      // a phone held sideways (640x360 to 932x430): the answer goes beside the canvas
      screens: { "phone-land": { raw: "(orientation: landscape) and (max-height: 500px)" } },
      fontFamily: { sans: ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"] },
    },
  },
};
