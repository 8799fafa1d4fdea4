"""Reports: every renderer is a pure function of saved results (none imports the runner).

One module per format (`markdown`, `csv`, `json`, `html`), each with `render(report)` for one
result and `render_many(reports)` for a matrix run; `console` prints to the terminal. Load and
think results render in their own wings (`load.render`, `think.render`); `velobench.export` is
the one place that picks a renderer for a result and a format.
"""
