FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aerovision ./aerovision
COPY contracts ./contracts
COPY infra ./infra
COPY services ./services
RUN pip install --no-cache-dir .
EXPOSE 8888
# In a container the gateway must listen on every interface: say so (its default is loopback).
CMD ["aerovision", "gateway", "--host", "0.0.0.0"]
