// Starts Swagger UI on this service's OpenAPI document. An external file, so the page's
// Content-Security-Policy needs no 'unsafe-inline'.
window.ui = SwaggerUIBundle({
  url: "/schema/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
