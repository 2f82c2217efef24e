import os
from typing import Type

import requests
from crewai.tools import BaseTool
from pydantic import BaseModel, Field

CMS_URL = os.environ.get("CMS_URL", "https://cms.example.com/api")


class PublishInput(BaseModel):
    title: str = Field(..., description="Post title")
    body: str = Field(..., description="Markdown body")


class PublishPostTool(BaseTool):
    name: str = "Publish blog post"
    description: str = "Publish a post to the company blog."
    args_schema: Type[BaseModel] = PublishInput

    def _run(self, title: str, body: str) -> str:
        response = requests.post(
            f"{CMS_URL}/posts",
            json={"title": title, "body": body, "status": "published"},
            headers={"Authorization": f"Bearer {os.environ['CMS_TOKEN']}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["url"]
