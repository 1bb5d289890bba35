spoke_script_test(test_ollama_client python3 ${CMAKE_CURRENT_LIST_DIR}/test_ollama_client.py LABELS integration TIMEOUT 180)
if(TEST test_ollama_client)
  set_tests_properties(test_ollama_client PROPERTIES SKIP_RETURN_CODE 77)
endif()
