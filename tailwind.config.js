/** Tailwind scans the page and its hand-written modules (not the generated model modules). */
export default {
  content: ["webapp/index.html", "webapp/js/**/*.js"],
  darkMode: "class",
  theme: {
    extend: {
      fontFamily: { sans: ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"] },
    },
  },
};
