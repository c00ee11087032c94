FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aerovision ./aerovision
COPY contracts ./contracts
COPY infra ./infra
COPY services ./services
RUN pip install --no-cache-dir .
EXPOSE 8888
CMD ["aerovision", "gateway"]
