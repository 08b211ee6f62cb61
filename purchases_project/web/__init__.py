"""What both web roles show a person in a browser: sign-in (`signin`), the shared page layout
and stylesheet, and the sign-in links on Django REST framework's browsable pages."""
