spoke_script_test(test_openai_sdk python3 ${CMAKE_CURRENT_LIST_DIR}/test_openai_sdk.py LABELS integration TIMEOUT 200)
if(TEST test_openai_sdk)
  set_tests_properties(test_openai_sdk PROPERTIES SKIP_RETURN_CODE 77)
endif()
