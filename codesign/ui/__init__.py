"""`precsim ui`: the explorer in the browser (Dash). `compute` holds what the views compute
(no Dash); `app` builds the page; one module per tab (layout + callbacks)."""
