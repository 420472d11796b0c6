# The training container: python -m trainer.task is the entry point.
FROM python:3.11-slim
WORKDIR /app
COPY setup.py pyproject.toml ./
COPY trainer ./trainer
RUN pip install --no-cache-dir .
ENTRYPOINT ["python", "-m", "trainer.task"]
