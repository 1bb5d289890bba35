spoke_script_test(test_embeddings python3 ${CMAKE_CURRENT_LIST_DIR}/test_embeddings.py LABELS integration TIMEOUT 240)
if(TEST test_embeddings)
  set_tests_properties(test_embeddings PROPERTIES SKIP_RETURN_CODE 77)
endif()
