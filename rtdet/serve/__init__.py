"""``rtdet serve``: an HTTP inference server with a web page, for every task.

- :mod:`rtdet.serve.app`: the FastAPI app (routes, answers, refusals);
- :mod:`rtdet.serve.inputs`: request bodies, images and parameters, each fault with its status;
- :mod:`rtdet.serve.schemas`: the parameters' checks and the answers' shapes (OpenAPI);
- :mod:`rtdet.serve.pool`: the bounded worker pool (the threading choice is explained there);
- :mod:`rtdet.serve.server`: uvicorn on a socket, stopped cleanly by SIGINT/SIGTERM;
- ``page/``: the web page (plain HTML, CSS and JavaScript; nothing fetched from elsewhere).

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, fastapi-offline); nothing here is
imported by ``import rtdet``.
"""
