"""HTML of the sandbox login and consent pages (Jinja templates rendered with autoescaping)."""

_HIDDEN = """{% for name, value in oauth.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}"""

LOGIN = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in | Xero (sandbox)</title></head>
<body>
<h1>Log in to Xero</h1>
<p>Sandbox Xero &mdash; <strong>{{ app_name }}</strong> wants to connect to your organisation.</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
"""
    + _HIDDEN
    + """<input type="hidden" name="step" value="login">
<label>Email address <input type="email" name="email" value="{{ email }}" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<button type="submit">Log in</button>
</form>
<p><small>Sandbox user: {{ hint_email }} / {{ hint_password }}</small></p>
</body></html>
"""
)

CONSENT = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access | Xero (sandbox)</title></head>
<body>
<h1>{{ app_name }} wants access to your Xero organisation</h1>
<p>Signed in as {{ user_email }}.</p>
<p>This app is asking to:</p>
<ul>{% for scope in scopes %}<li>{{ scope }}</li>{% endfor %}</ul>
<form method="post" action="{{ action }}">
"""
    + _HIDDEN
    + """<input type="hidden" name="step" value="consent">
<input type="hidden" name="login_ticket" value="{{ ticket }}">
{% if orgs|length > 1 %}
<label>Organisation
<select name="tenant_id">
{% for org in orgs %}<option value="{{ org.tenant_id }}">{{ org.name }}</option>{% endfor %}
</select></label>
{% else %}
<p>Organisation: {{ orgs[0].name }}</p>
<input type="hidden" name="tenant_id" value="{{ orgs[0].tenant_id }}">
{% endif %}
<button type="submit" name="decision" value="allow">Allow access</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
</body></html>
"""
)

ERROR = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error | Xero (sandbox)</title></head>
<body><h1>Sorry, something went wrong</h1><p>{{ error }}</p><p><code>{{ code }}</code></p></body></html>
"""
